//! Issue 10: the multi-tenancy boundary, tried from the attacker's side. A tenant who may create objects in one
//! namespace only (the control plane's token user, bound to a Role there) tries every way to mint for, or read
//! the secret of, another team's application through the operator's identity: a namespaced provider without
//! `auth` (or with `rrsa`), the default provider, `spec.secretId` through a ClusterEiamProvider without
//! `allowImport`, a ClusterEiamProvider that does not allow the namespace. Each attempt must end `NotAllowed` with
//! one Warning event, without a single EIAM call for the victim's application and without the victim's value in
//! any Secret the tenant can read. Positive controls in the same namespace show that what an admin granted works.

use std::collections::BTreeMap;

use eiam_operator::api::{ApplicationClientSecret, ClusterEiamProvider, EiamProvider};
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::common::fake_eiam::FakeSpec;
use crate::support::*;

/// Another team's application, with a secret that team minted and uses.
const VICTIM_APP: &str = "app_victim";
/// The tenant's own application, granted through the default provider.
const TENANT_APP: &str = "app_tenant";
/// The tenant's application with a secret minted by hand earlier, granted for import through a cluster provider.
const TENANT_LEGACY_APP: &str = "app_tenant_legacy";
/// The tenant's application served by its own RAM user (an EiamProvider with an AccessKey Secret).
const TENANT_OWN_APP: &str = "app_tenant_own";
/// The tenant team's own RAM user.
const TENANT_AK: (&str, &str) = ("LTAI5tTenantOwnKey", "tenant-own-access-key-secret");

/// The token user of the control plane, as the tenant: RBAC in its namespace only, like a team member on a shared
/// cluster (ApplicationClientSecrets, EiamProviders, Secrets and reading Events; nothing cluster-scoped).
pub(crate) async fn tenant_client(s: &Scenario) -> Client {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "tenant" },
        "rules": [
            { "apiGroups": ["eiam-operator.io"], "resources": ["applicationclientsecrets", "eiamproviders"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] },
            { "apiGroups": [""], "resources": ["secrets"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"] }
        ]
    }))
    .expect("a Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "tenant" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "eiam-test-user" }]
    }))
    .expect("a RoleBinding");
    s.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .expect("create the tenant's Role");
    s.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the tenant's Role");
    let client = s.cp.user_client().await;
    // The API server's authorizer learns of a new binding from its own watch: wait until it grants the tenant what
    // the Role says (a first request right after the binding can still be refused).
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let namespace = s.namespace().to_owned();
    crate::common::wait_until("the tenant's Role is in force", SOON, || {
        let (reviews, namespace) = (reviews.clone(), namespace.clone());
        async move {
            let review: SelfSubjectAccessReview = serde_json::from_value(json!({
                "spec": { "resourceAttributes": {
                    "namespace": namespace, "verb": "create", "resource": "secrets" } }
            }))
            .ok()?;
            let answer = reviews.create(&PostParams::default(), &review).await.ok()?;
            answer.status.is_some_and(|s| s.allowed).then_some(())
        }
    })
    .await;
    client
}

pub(crate) async fn create_as<K>(client: &Client, namespace: &str, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let typed: K = serde_json::from_value(object.clone()).expect("a valid object");
    api.create(&PostParams::default(), &typed)
        .await
        .unwrap_or_else(|e| panic!("the tenant creates {object}: {e}"))
}

fn resource(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": name }, "spec": spec,
    })
}

/// The message of a `NotAllowed` stall, after checking the resource is refused the kstatus way (Ready=False,
/// Stalled=True) and that one Warning event says so (the event is recorded before the status that follows it).
async fn refused(s: &Scenario, name: &str) -> String {
    let stalled = s.wait_stalled(name, "NotAllowed").await;
    assert_eq!(condition_status(&stalled, "Ready"), "False", "{name}");
    assert_eq!(
        s.event_count(name, "Warning", "NotAllowed").await,
        1,
        "{name}: one Warning event, on the transition"
    );
    condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Every EIAM call the fake received for `application`.
async fn calls_for(s: &Scenario, application: &str) -> Vec<String> {
    s.fake
        .calls()
        .await
        .into_iter()
        .filter(|c| c.params.get("ApplicationId").map(String::as_str) == Some(application))
        .map(|c| format!("{} {}", c.action, c.outcome))
        .collect()
}

/// Every data value of every Secret the tenant can read in its namespace, by `secret/key`.
async fn tenant_secret_values(tenant: &Client, namespace: &str) -> BTreeMap<String, String> {
    let secrets: Api<Secret> = Api::namespaced(tenant.clone(), namespace);
    let mut values = BTreeMap::new();
    for secret in secrets
        .list(&ListParams::default())
        .await
        .expect("the tenant lists its Secrets")
        .items
    {
        let name = secret.metadata.name.clone().unwrap_or_default();
        for (key, value) in secret.data.unwrap_or_default() {
            values.insert(
                format!("{name}/{key}"),
                String::from_utf8_lossy(&value.0).into_owned(),
            );
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i10_a_tenant_reaches_only_what_the_admin_granted() {
    let mut s = Scenario::with_fake(
        "i10-tenant",
        &[VICTIM_APP, TENANT_APP, TENANT_LEGACY_APP, TENANT_OWN_APP],
        FakeSpec::new().access_key(TENANT_AK.0, TENANT_AK.1),
    )
    .await;
    let ns = s.namespace().to_owned();
    let victim = s.fake.insert_secret(INSTANCE, VICTIM_APP, json!({})).await;
    let legacy = s
        .fake
        .insert_secret(INSTANCE, TENANT_LEGACY_APP, json!({}))
        .await;
    // The admin's configuration: the operator's own AccessKey (ambient credentials), a default provider granted to
    // this namespace for the tenant's own application only, import not granted.
    let operator = s
        .operator_spec_without_grant()
        .arg("--default-provider-allowed-namespaces")
        .arg(&ns)
        .arg("--default-provider-allowed-applications")
        .arg(format!("{INSTANCE}/{TENANT_APP}"));
    s.start_operator_with(operator).await;

    // Cluster providers only an admin can create: one for this namespace without allowImport, one with it for the
    // legacy application, one for another namespace only.
    let cluster_providers: Api<ClusterEiamProvider> = Api::all(s.client.clone());
    let names = [
        format!("{ns}-no-import"),
        format!("{ns}-import"),
        format!("{ns}-elsewhere"),
    ];
    for (name, extra) in [
        (&names[0], json!({ "allowedNamespaces": { "names": [ns] } })),
        (
            &names[1],
            json!({ "allowedNamespaces": { "names": [ns] }, "allowImport": true,
                    "allowedApplications": [{ "instanceId": INSTANCE, "applicationId": TENANT_LEGACY_APP }] }),
        ),
        (
            &names[2],
            json!({ "allowedNamespaces": { "names": ["payments"] } }),
        ),
    ] {
        let mut spec = json!({ "endpoint": s.fake.url() });
        spec.as_object_mut()
            .expect("an object")
            .extend(extra.as_object().expect("an object").clone());
        let provider: ClusterEiamProvider =
            serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
                .expect("a ClusterEiamProvider");
        cluster_providers
            .create(&PostParams::default(), &provider)
            .await
            .expect("the admin creates a ClusterEiamProvider");
    }

    let tenant = tenant_client(&s).await;
    // The tenant's RBAC is what the test claims: its namespace, nothing cluster-scoped.
    let forbidden = Api::<ClusterEiamProvider>::all(tenant.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": format!("{ns}-mine") },
                                            "spec": { "endpoint": s.fake.url() } }))
            .expect("a ClusterEiamProvider"),
        )
        .await;
    assert!(
        matches!(&forbidden, Err(kube::Error::Api(status)) if status.code == 403),
        "the tenant may not create a ClusterEiamProvider: {forbidden:?}"
    );

    // The tenant's own namespaced providers: one without auth, one with RRSA (both the operator's identity), one
    // with the team's own AccessKey.
    create_as::<Secret>(
        &tenant,
        &ns,
        json!({ "metadata": { "name": "team-ak" },
                "stringData": { "accessKeyId": TENANT_AK.0, "accessKeySecret": TENANT_AK.1 } }),
    )
    .await;
    for (name, auth) in [
        ("ambient", Value::Null),
        (
            "rrsa",
            json!({ "rrsa": { "roleArn": "acs:ram::1:role/operator", "oidcProviderArn": "acs:ram::1:oidc-provider/c" } }),
        ),
        (
            "own-key",
            json!({ "accessKey": { "secretRef": { "name": "team-ak" } } }),
        ),
    ] {
        let mut spec = json!({ "endpoint": s.fake.url() });
        if !auth.is_null() {
            spec["auth"] = auth;
        }
        create_as::<EiamProvider>(
            &tenant,
            &ns,
            json!({ "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider",
                    "metadata": { "name": name }, "spec": spec }),
        )
        .await;
    }

    // --- The attacks, each as the tenant.
    let provider = |kind: &str, name: &str| json!({ "kind": kind, "name": name });
    let attacks = [
        (
            "ns-provider-import",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP, "secretId": victim.secret_id,
                    "providerRef": provider("EiamProvider", "ambient") }),
            "no spec.auth",
        ),
        (
            "ns-provider-mint",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP,
                    "providerRef": provider("EiamProvider", "ambient") }),
            "--namespaced-providers-ambient-credentials",
        ),
        (
            "rrsa-provider-mint",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP,
                    "providerRef": provider("EiamProvider", "rrsa") }),
            "spec.auth.rrsa",
        ),
        (
            "default-import",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP, "secretId": victim.secret_id }),
            "--default-provider-allowed-applications",
        ),
        (
            "default-mint",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP }),
            "--default-provider-allowed-applications",
        ),
        (
            "cluster-import-without-allow-import",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP, "secretId": victim.secret_id,
                    "providerRef": provider("ClusterEiamProvider", &names[0]) }),
            "spec.allowImport is false",
        ),
        (
            "cluster-provider-of-another-namespace",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP,
                    "providerRef": provider("ClusterEiamProvider", &names[2]) }),
            "spec.allowedNamespaces",
        ),
        (
            "cluster-import-of-an-application-not-allowed",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP, "secretId": victim.secret_id,
                    "providerRef": provider("ClusterEiamProvider", &names[1]) }),
            "spec.allowedApplications",
        ),
    ];
    for (name, spec, _) in &attacks {
        create_as::<ApplicationClientSecret>(&tenant, &ns, resource(name, spec.clone())).await;
    }
    // Importing even its own granted application needs the import grant.
    create_as::<ApplicationClientSecret>(
        &tenant,
        &ns,
        resource(
            "default-import-own-application",
            json!({ "instanceId": INSTANCE, "applicationId": TENANT_APP, "secretId": legacy.secret_id }),
        ),
    )
    .await;

    for (name, _, says) in &attacks {
        let message = refused(&s, name).await;
        assert!(message.contains(says), "{name}: {message}");
    }
    let message = refused(&s, "default-import-own-application").await;
    assert!(
        message.contains("--default-provider-allow-import"),
        "{message}"
    );

    // --- Positive controls: what the admin granted works, in the same namespace, as the same tenant.
    create_as::<ApplicationClientSecret>(
        &tenant,
        &ns,
        resource(
            "granted-default",
            json!({ "instanceId": INSTANCE, "applicationId": TENANT_APP }),
        ),
    )
    .await;
    create_as::<ApplicationClientSecret>(
        &tenant,
        &ns,
        resource(
            "granted-import",
            json!({ "instanceId": INSTANCE, "applicationId": TENANT_LEGACY_APP, "secretId": legacy.secret_id,
                    "providerRef": provider("ClusterEiamProvider", &names[1]) }),
        ),
    )
    .await;
    create_as::<ApplicationClientSecret>(
        &tenant,
        &ns,
        resource(
            "own-key",
            json!({ "instanceId": INSTANCE, "applicationId": TENANT_OWN_APP,
                    "providerRef": provider("EiamProvider", "own-key") }),
        ),
    )
    .await;
    for name in ["granted-default", "granted-import", "own-key"] {
        s.wait_ready(name).await;
    }
    let values = tenant_secret_values(&tenant, &ns).await;
    let minted = s.fake.secrets(INSTANCE, TENANT_APP).await;
    assert_eq!(minted.len(), 1);
    assert_eq!(
        values.get("granted-default/clientSecret"),
        Some(&minted[0].client_secret)
    );
    assert_eq!(
        values.get("granted-import/clientSecret"),
        Some(&legacy.client_secret),
        "import through a provider that allows it"
    );
    assert!(
        s.fake
            .calls()
            .await
            .iter()
            .filter(|c| c.params.get("ApplicationId").map(String::as_str) == Some(TENANT_OWN_APP))
            .all(|c| c.access_key_id.as_deref() == Some(TENANT_AK.0)),
        "the team's own provider signs with the team's own AccessKey"
    );
    // The providers say the same about themselves: the ambient ones are not usable.
    let providers: Api<EiamProvider> = Api::namespaced(tenant.clone(), &ns);
    for name in ["ambient", "rrsa"] {
        let reason = crate::common::wait_until(
            format!("EiamProvider {name} Ready=False NotAllowed"),
            SOON,
            || async {
                let status = providers.get(name).await.ok()?.status?;
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready" && c.status == "False")
                    .map(|c| c.reason.clone())
            },
        )
        .await;
        assert_eq!(reason, "NotAllowed", "{name}");
    }

    // --- What the attacks got: nothing.
    let victim_calls = calls_for(&s, VICTIM_APP).await;
    assert!(
        victim_calls.is_empty(),
        "no EIAM call for the victim's application: {victim_calls:?}"
    );
    let held = s.fake.secrets(INSTANCE, VICTIM_APP).await;
    assert_eq!(held.len(), 1, "no slot of the victim's application burnt");
    assert_eq!(held[0].secret_id, victim.secret_id);
    let leaked: Vec<&String> = values
        .iter()
        .filter(|(_, value)| value.contains(&victim.client_secret))
        .map(|(place, _)| place)
        .collect();
    assert!(
        leaked.is_empty(),
        "the victim's secret reached the tenant: {leaked:?}"
    );
    for (name, _, _) in &attacks {
        let secrets: Api<Secret> = Api::namespaced(tenant.clone(), &ns);
        assert!(
            secrets.get_opt(name).await.expect("get").is_none(),
            "{name}: no Secret written for a refused resource"
        );
    }

    // Refused resources claim nothing: the team an admin did grant the application to is not blocked by them
    // (no Conflict naming the attacker's resources).
    s.create(
        "granted-victim-team",
        json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP,
                "providerRef": provider("ClusterEiamProvider", &names[0]) }),
    )
    .await;
    s.wait_ready("granted-victim-team").await;

    // A refused resource holds nothing, so the tenant can delete it.
    for (name, _, _) in &attacks {
        Api::<ApplicationClientSecret>::namespaced(tenant.clone(), &ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("the tenant deletes its refused resource");
    }
    for (name, _, _) in &attacks {
        s.wait_gone(name).await;
    }
    for name in &names {
        let _ = cluster_providers
            .delete(name, &DeleteParams::default())
            .await;
    }
    s.extra_values.insert(TENANT_AK.1.to_owned());
    s.finish().await;
}

/// With the operator installed the documented way and no grant configured, the default provider serves nobody:
/// every attempt through it is refused, and the message names the flag and the Helm value that would grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i10_an_ungranted_default_provider_serves_nobody() {
    let mut s = Scenario::new("i10-ungranted", &[VICTIM_APP]).await;
    let ns = s.namespace().to_owned();
    let victim = s.fake.insert_secret(INSTANCE, VICTIM_APP, json!({})).await;
    let operator = s.operator_spec_without_grant();
    s.start_operator_with(operator).await;
    let tenant = tenant_client(&s).await;
    for (name, spec) in [
        (
            "mint",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP }),
        ),
        (
            "import",
            json!({ "instanceId": INSTANCE, "applicationId": VICTIM_APP, "secretId": victim.secret_id }),
        ),
    ] {
        create_as::<ApplicationClientSecret>(&tenant, &ns, resource(name, spec)).await;
    }
    for name in ["mint", "import"] {
        let message = refused(&s, name).await;
        for needed in [
            "granted to no namespace",
            "--default-provider-allowed-namespaces",
            "operator.defaultProvider.allowedNamespaces",
        ] {
            assert!(message.contains(needed), "{name}: {message}");
        }
    }
    assert!(
        s.fake.calls().await.is_empty(),
        "no EIAM call at all: {:?}",
        s.fake.calls().await
    );
    assert!(
        tenant_secret_values(&tenant, &ns)
            .await
            .values()
            .all(|v| !v.contains(&victim.client_secret)),
        "the victim's secret reached the tenant"
    );
    s.finish().await;
}
