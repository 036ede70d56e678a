//! The CRDs' admission rules enforced by a real kube-apiserver (tests/testenv): every invalid resource is refused
//! with a message that names the field, valid ones are accepted and defaulted as documented.
//!
//! Creates use server-side dry-run (full admission and validation, nothing stored) so cluster-scoped providers from
//! parallel tests never collide; the update tests store a real object in the test's namespace.

mod common;

use eiam_operator::api::{ApplicationClientSecret, ClusterEiamProvider, EiamProvider};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..PostParams::default()
    }
}

fn api_for<K: Resource<DynamicType = ()>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn object(kind: &str, name: &str, namespace: Option<&str>, spec: Value) -> DynamicObject {
    let mut metadata = json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }))
    .expect("object")
}

/// Merges `patch` into `base` (objects recursively; `null` removes a key).
fn merged(mut base: Value, patch: &Value) -> Value {
    if let (Some(base_map), Some(patch_map)) = (base.as_object_mut(), patch.as_object()) {
        for (key, value) in patch_map {
            if value.is_null() {
                base_map.remove(key);
            } else {
                let entry = base_map.remove(key).unwrap_or(Value::Null);
                base_map.insert(key.clone(), merged(entry, value));
            }
        }
        base
    } else {
        patch.clone()
    }
}

fn secret_spec(patch: Value) -> Value {
    merged(
        json!({ "instanceId": "idaas_admission", "applicationId": "app_admission" }),
        &patch,
    )
}

/// The API server's answer to a refused create: `(HTTP code, message)`.
async fn refused(api: &Api<DynamicObject>, object: &DynamicObject) -> (u16, String) {
    match api.create(&dry_run(), object).await {
        Ok(created) => panic!(
            "accepted, but should have been refused: {:?}",
            created.data["spec"]
        ),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn assert_names(message: &str, expected: &[&str], case: &str) {
    for fragment in expected {
        assert!(
            message.contains(fragment),
            "{case}: {message:?} does not contain {fragment:?}"
        );
    }
}

#[tokio::test]
async fn invalid_application_client_secrets_are_refused_naming_the_field() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("crd-admission").await;
    let api = api_for::<ApplicationClientSecret>(&client, Some(ns.name()));

    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "empty instanceId",
            json!({"instanceId": ""}),
            vec!["spec.instanceId", "at least 1 chars long"],
        ),
        (
            "empty applicationId",
            json!({"applicationId": ""}),
            vec!["spec.applicationId", "at least 1 chars long"],
        ),
        (
            "missing applicationId",
            json!({"applicationId": null}),
            vec!["spec.applicationId", "Required value"],
        ),
        (
            "whitespace in instanceId",
            json!({"instanceId": "idaas 1"}),
            vec!["spec.instanceId", "should match"],
        ),
        (
            "bad duration",
            json!({"expiresAfter": "90d"}),
            vec!["spec.expiresAfter", "should match"],
        ),
        (
            "expiresAfter 23h",
            json!({"expiresAfter": "23h"}),
            vec![
                "spec.expiresAfter",
                "spec.expiresAfter must be between 24h and 26280h",
            ],
        ),
        (
            "expiresAfter 26281h",
            json!({"expiresAfter": "26281h"}),
            vec![
                "spec.expiresAfter",
                "spec.expiresAfter must be between 24h and 26280h",
            ],
        ),
        (
            "renewBefore == expiresAfter",
            json!({"expiresAfter": "24h", "renewBefore": "24h"}),
            vec![
                "spec.renewBefore",
                "spec.renewBefore must be shorter than spec.expiresAfter",
            ],
        ),
        (
            "renewBefore > expiresAfter",
            json!({"expiresAfter": "24h", "renewBefore": "1440m1s"}),
            vec!["spec.renewBefore must be shorter than spec.expiresAfter"],
        ),
        (
            "renewBefore without expiresAfter",
            json!({"renewBefore": "1h"}),
            vec!["spec.renewBefore requires spec.expiresAfter"],
        ),
        (
            "renewBefore under a minute",
            json!({"expiresAfter": "24h", "renewBefore": "30s"}),
            vec!["spec.renewBefore", "spec.renewBefore must be at least 1m"],
        ),
        (
            "gracePeriod over 720h",
            json!({"rotation": {"gracePeriod": "721h"}}),
            vec![
                "spec.rotation.gracePeriod",
                "spec.rotation.gracePeriod must be at most 720h",
            ],
        ),
        (
            "unknown provider kind",
            json!({"providerRef": {"kind": "Issuer", "name": "p"}}),
            vec!["spec.providerRef.kind", "Unsupported value: \"Issuer\""],
        ),
        (
            "providerRef without name",
            json!({"providerRef": {"kind": "EiamProvider"}}),
            vec!["spec.providerRef.name", "Required value"],
        ),
        (
            "unknown restart target kind",
            json!({"rotation": {"restartTargets": [{"kind": "Pod", "name": "x"}]}}),
            vec![
                "spec.rotation.restartTargets[0].kind",
                "Unsupported value: \"Pod\"",
            ],
        ),
        (
            "duplicate restart target",
            json!({"rotation": {"restartTargets": [{"kind": "Deployment", "name": "x"}, {"kind": "Deployment", "name": "x"}]}}),
            vec!["spec.rotation.restartTargets[1]", "Duplicate value"],
        ),
        (
            "unknown creationPolicy",
            json!({"target": {"creationPolicy": "Merge"}}),
            vec!["spec.target.creationPolicy", "Unsupported value"],
        ),
        (
            "unknown deletionPolicy",
            json!({"deletionPolicy": "Orphan"}),
            vec!["spec.deletionPolicy", "Unsupported value"],
        ),
        (
            "same data key twice",
            json!({"target": {"keys": {"clientId": "k", "clientSecret": "k"}}}),
            vec![
                "spec.target.keys",
                "spec.target.keys.clientId and spec.target.keys.clientSecret must be different keys",
            ],
        ),
        (
            "invalid Secret name",
            json!({"target": {"name": "Not_A_Name"}}),
            vec!["spec.target.name", "should match"],
        ),
        (
            "reserved label",
            json!({"target": {"labels": {"app.kubernetes.io/managed-by": "me"}}}),
            vec!["spec.target.labels must not set app.kubernetes.io/managed-by"],
        ),
        (
            "reserved annotation",
            json!({"target": {"annotations": {"eiam-operator.io/secret-id": "sci_x"}}}),
            vec!["spec.target.annotations must not set eiam-operator.io/ annotations"],
        ),
        (
            "maxGracePeriod without retireWhenUnusedFor",
            json!({"rotation": {"maxGracePeriod": "2h"}}),
            vec!["spec.rotation.maxGracePeriod requires spec.rotation.retireWhenUnusedFor"],
        ),
        (
            "maxGracePeriod shorter than gracePeriod",
            json!({"rotation": {"gracePeriod": "2h", "retireWhenUnusedFor": "1h", "maxGracePeriod": "1h"}}),
            vec!["spec.rotation.maxGracePeriod must be at least spec.rotation.gracePeriod"],
        ),
        (
            "maxGracePeriod past the next renewal",
            json!({"expiresAfter": "72h", "renewBefore": "24h",
                   "rotation": {"retireWhenUnusedFor": "1h", "maxGracePeriod": "48h"}}),
            vec![
                "spec.rotation.maxGracePeriod must be shorter than spec.expiresAfter minus spec.renewBefore",
            ],
        ),
        (
            "maxGracePeriod past the default renewal (two thirds of expiresAfter)",
            json!({"expiresAfter": "72h",
                   "rotation": {"retireWhenUnusedFor": "1h", "maxGracePeriod": "48h"}}),
            vec![
                "spec.rotation.maxGracePeriod must be shorter than spec.expiresAfter minus spec.renewBefore",
            ],
        ),
        (
            "a window shorter than a minute",
            json!({"rotation": {"windows": [{"schedule": "0 2 * * SAT", "duration": "30s"}]}}),
            vec!["spec.rotation.windows[].duration must be at least 1m"],
        ),
        (
            "a window with a numeric day of week",
            json!({"rotation": {"windows": [{"schedule": "0 2 * * 1-5", "duration": "1h"}]}}),
            vec!["spec.rotation.windows[0].schedule", "should match"],
        ),
        (
            "a window with four fields",
            json!({"rotation": {"windows": [{"schedule": "0 12 1 JAN", "duration": "1h"}]}}),
            vec!["spec.rotation.windows[0].schedule", "should match"],
        ),
        (
            "retireWhenUnusedFor not a duration",
            json!({"rotation": {"retireWhenUnusedFor": "soon"}}),
            vec!["spec.rotation.retireWhenUnusedFor", "should match"],
        ),
        (
            "template printing an unknown variable",
            json!({"target": {"template": {"data": {"app.env": "ID={{ clientId }}\nSECRET={{ clientSecert }}"}}}}),
            vec![
                "spec.target.template.data[\"app.env\"]",
                "unknown variable; the variables are clientId, clientSecret, secretId, expiresAt, instanceId and applicationId",
            ],
        ),
        (
            "template key that is no Secret key",
            json!({"target": {"template": {"data": {"app env": "{{ clientId }}"}}}}),
            vec!["spec.target.template.data keys must be valid Secret data keys"],
        ),
        (
            "template without data",
            json!({"target": {"template": {"data": {}}}}),
            vec![
                "spec.target.template.data",
                "should have at least 1 properties",
            ],
        ),
        (
            "template with an invalid Secret type",
            json!({"target": {"template": {"type": "not a type", "data": {"a": "{{ clientId }}"}}}}),
            vec!["spec.target.template.type", "should match"],
        ),
    ];
    for (case, patch, expected) in cases {
        let object = object(
            "ApplicationClientSecret",
            "refused",
            Some(ns.name()),
            secret_spec(patch),
        );
        let (code, message) = refused(&api, &object).await;
        assert_eq!(code, 422, "{case}: {message}");
        assert_names(&message, &expected, case);
    }
}

#[tokio::test]
async fn valid_application_client_secrets_are_accepted_with_documented_defaults() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("crd-defaults").await;
    let api = api_for::<ApplicationClientSecret>(&client, Some(ns.name()));

    let minimal = api
        .create(
            &dry_run(),
            &object(
                "ApplicationClientSecret",
                "minimal",
                Some(ns.name()),
                secret_spec(json!({})),
            ),
        )
        .await
        .expect("minimal resource accepted");
    let spec = &minimal.data["spec"];
    assert_eq!(spec["rotation"], json!({"gracePeriod": "1h"}));
    // No stored default for the keys: with a template, only keys set explicitly are written next to it.
    assert!(spec["target"].get("keys").is_none(), "{spec}");
    assert_eq!(spec["target"]["creationPolicy"], "Owner");
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert!(
        spec.get("expiresAfter").is_none(),
        "no expiry unless asked: {spec}"
    );

    let with_provider = api
        .create(
            &dry_run(),
            &object(
                "ApplicationClientSecret",
                "with-provider",
                Some(ns.name()),
                secret_spec(json!({"providerRef": {"name": "team"}})),
            ),
        )
        .await
        .expect("providerRef without kind accepted");
    assert_eq!(
        with_provider.data["spec"]["providerRef"]["kind"],
        "EiamProvider"
    );

    for (case, patch) in [
        ("bounds", json!({"expiresAfter": "24h"})),
        (
            "upper bound",
            json!({"expiresAfter": "26280h", "renewBefore": "8760h"}),
        ),
        (
            "renewal test values",
            json!({"expiresAfter": "24h", "renewBefore": "23h59m45s", "rotation": {"gracePeriod": "10s"}}),
        ),
        (
            "rotation windows",
            json!({"rotation": {"windows": [
                {"schedule": "0 1 * * MON-FRI", "duration": "2h", "timeZone": "Asia/Shanghai"},
                {"schedule": "*/30 * 1 JAN,JUL *", "duration": "10m"}]}}),
        ),
        (
            "usage-aware retirement",
            json!({"expiresAfter": "72h", "rotation": {"gracePeriod": "1h", "retireWhenUnusedFor": "6h",
                                                         "maxGracePeriod": "47h"}}),
        ),
        (
            "fractions and units",
            json!({"expiresAfter": "1.5h1440m", "renewBefore": "90m"}),
        ),
        (
            "a template with filters, statements, literals and JSON braces",
            json!({"target": {"template": {"type": "kubernetes.io/basic-auth", "data": {
                "username": "{{ clientId }}",
                "password": "{{- clientSecret -}}",
                "config.json": "{\"auth\": {\"secret\": {{ clientSecret | tojson }}, \"expires\": \"{{ expiresAt }}\"}}",
                "app.env": "{% if expiresAt %}EXPIRES={{ expiresAt }}{% endif %}\n{{ true }}{{ 'x' | upper }}",
                "loop.txt": "{% for x in ['a', 'b'] %}{{ (loop.index) }}{{ (x) }}{% endfor %}"
            }}}}),
        ),
        (
            "everything",
            json!({
                "secretId": "sci_k52x2ru63rlkflina5utgkxxxx",
                "providerRef": {"kind": "ClusterEiamProvider", "name": "production"},
                "expiresAfter": "2160h", "renewBefore": "720h",
                "rotation": {"gracePeriod": "720h", "restartTargets": [
                    {"kind": "Deployment", "name": "web"}, {"kind": "StatefulSet", "name": "web"}, {"kind": "DaemonSet", "name": "agent"}]},
                "target": {"name": "web-oidc", "keys": {"clientId": "CLIENT_ID", "clientSecret": "CLIENT_SECRET"},
                           "labels": {"team": "web"}, "annotations": {"reloader.stakater.com/match": "true"},
                           "creationPolicy": "Orphan"},
                "deletionPolicy": "Retain"
            }),
        ),
    ] {
        api.create(
            &dry_run(),
            &object(
                "ApplicationClientSecret",
                "valid",
                Some(ns.name()),
                secret_spec(patch),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{case}: refused: {e}"));
    }
}

#[tokio::test]
async fn ids_cannot_change_after_creation() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("crd-immutable").await;
    let api = api_for::<ApplicationClientSecret>(&client, Some(ns.name()));
    let spec = secret_spec(json!({"secretId": "sci_1"}));
    let stored = api
        .create(
            &PostParams::default(),
            &object(
                "ApplicationClientSecret",
                "stored",
                Some(ns.name()),
                spec.clone(),
            ),
        )
        .await
        .expect("create");

    for (field, value, message) in [
        ("instanceId", "idaas_other", "spec.instanceId is immutable"),
        (
            "applicationId",
            "app_other",
            "spec.applicationId is immutable",
        ),
        ("secretId", "sci_2", "spec.secretId is immutable"),
    ] {
        let mut changed = stored.clone();
        changed.data["spec"][field] = json!(value);
        match api
            .replace("stored", &PostParams::default(), &changed)
            .await
        {
            Ok(_) => panic!("changing spec.{field} was accepted"),
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{}", status.message);
                assert_names(&status.message, &[&format!("spec.{field}"), message], field);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    // Everything else may change.
    let mut changed = stored.clone();
    changed.data["spec"]["expiresAfter"] = json!("48h");
    changed.data["spec"]["deletionPolicy"] = json!("Retain");
    api.replace("stored", &PostParams::default(), &changed)
        .await
        .expect("mutable fields can change");
}

fn provider_spec(patch: Value) -> Value {
    merged(json!({ "region": "cn-hangzhou" }), &patch)
}

#[tokio::test]
async fn invalid_providers_are_refused_naming_the_field() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("crd-providers").await;
    let namespaced = api_for::<EiamProvider>(&client, Some(ns.name()));
    let cluster = api_for::<ClusterEiamProvider>(&client, None);

    let ak_local = json!({"accessKey": {"secretRef": {"name": "eiam-ak"}}});
    let ak_namespaced =
        json!({"accessKey": {"secretRef": {"name": "eiam-ak", "namespace": "ops"}}});
    let rrsa = json!({"rrsa": {"roleArn": "acs:ram::1:role/eiam", "oidcProviderArn": "acs:ram::1:oidc-provider/ack"}});
    let common_cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "neither region nor endpoint",
            json!({"region": null}),
            vec!["spec.region or spec.endpoint must be set"],
        ),
        (
            "http to a remote host",
            json!({"endpoint": "http://eiam.cn-hangzhou.aliyuncs.com"}),
            vec!["spec.endpoint", "spec.endpoint must use https://"],
        ),
        (
            "http to a look-alike of localhost",
            json!({"endpoint": "http://localhost.example.com"}),
            vec!["spec.endpoint must use https://"],
        ),
        (
            "endpoint with a path",
            json!({"endpoint": "https://eiam.example.com/v1"}),
            vec!["spec.endpoint", "should match"],
        ),
        (
            "endpoint with user info",
            json!({"endpoint": "http://127.0.0.1@evil.example.com"}),
            vec!["spec.endpoint"],
        ),
        (
            "bad region",
            json!({"region": "CN Hangzhou"}),
            vec!["spec.region", "should match"],
        ),
        (
            "unknown signatureVersion",
            json!({"signatureVersion": "v2"}),
            vec!["spec.signatureVersion", "Unsupported value: \"v2\""],
        ),
        (
            "two auth methods",
            json!({"auth": merged(ak_namespaced.clone(), &rrsa)}),
            vec![
                "spec.auth",
                "spec.auth must set exactly one of accessKey or rrsa",
            ],
        ),
        (
            "empty auth",
            json!({"auth": {}}),
            vec!["spec.auth must set exactly one of accessKey or rrsa"],
        ),
        (
            "rrsa without roleArn",
            json!({"auth": {"rrsa": {"oidcProviderArn": "acs:ram::1:oidc-provider/ack"}}}),
            vec!["spec.auth.rrsa.roleArn", "Required value"],
        ),
        // An integer 0 slips past the schema's `minimum: 0.01` on a real API server; the CEL rule catches it.
        (
            "qps zero",
            json!({"qps": 0}),
            vec!["spec.qps", "spec.qps must be between 0.01 and 1000"],
        ),
        ("qps too small", json!({"qps": 0.001}), vec!["spec.qps"]),
        ("qps too large", json!({"qps": 5000}), vec!["spec.qps"]),
        (
            "empty allowed application",
            json!({"allowedApplications": [{"instanceId": "", "applicationId": "app_1"}]}),
            vec!["spec.allowedApplications[0].instanceId"],
        ),
    ];

    for (case, patch, expected) in &common_cases {
        let (code, message) = refused(
            &namespaced,
            &object(
                "EiamProvider",
                "refused",
                Some(ns.name()),
                provider_spec(patch.clone()),
            ),
        )
        .await;
        assert_eq!(code, 422, "EiamProvider {case}: {message}");
        assert_names(&message, expected, case);
        let (code, message) = refused(
            &cluster,
            &object(
                "ClusterEiamProvider",
                "refused",
                None,
                provider_spec(patch.clone()),
            ),
        )
        .await;
        assert_eq!(code, 422, "ClusterEiamProvider {case}: {message}");
        assert_names(&message, expected, case);
    }

    // Where the AccessKey Secret lives: the namespaced kind reads its own namespace, the cluster kind must say.
    let (_, message) = refused(
        &namespaced,
        &object(
            "EiamProvider",
            "refused",
            Some(ns.name()),
            provider_spec(json!({"auth": ak_namespaced})),
        ),
    )
    .await;
    assert_names(
        &message,
        &["spec.auth.accessKey.secretRef.namespace must not be set on an EiamProvider"],
        "ak ns",
    );
    let (_, message) = refused(
        &cluster,
        &object(
            "ClusterEiamProvider",
            "refused",
            None,
            provider_spec(json!({"auth": ak_local.clone()})),
        ),
    )
    .await;
    assert_names(
        &message,
        &["spec.auth.accessKey.secretRef.namespace is required on a ClusterEiamProvider"],
        "ak",
    );
}

#[tokio::test]
async fn valid_providers_are_accepted_with_documented_defaults() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("crd-provider-defaults").await;
    let namespaced = api_for::<EiamProvider>(&client, Some(ns.name()));
    let cluster = api_for::<ClusterEiamProvider>(&client, None);

    let created = namespaced
        .create(
            &dry_run(),
            &object(
                "EiamProvider",
                "team",
                Some(ns.name()),
                provider_spec(json!({"auth": {"accessKey": {"secretRef": {"name": "eiam-ak"}}}})),
            ),
        )
        .await
        .expect("EiamProvider with a local AccessKey Secret");
    assert_eq!(created.data["spec"]["signatureVersion"], "v1");
    assert_eq!(
        created.data["spec"]["auth"]["accessKey"]["secretRef"],
        json!({"name": "eiam-ak", "accessKeyIdKey": "accessKeyId", "accessKeySecretKey": "accessKeySecret"})
    );

    for endpoint in [
        "http://127.0.0.1:34567",
        "http://localhost:8080/",
        "http://[::1]:8080",
        "https://eiam-vpc.cn-hangzhou.aliyuncs.com",
    ] {
        namespaced
            .create(
                &dry_run(),
                &object(
                    "EiamProvider",
                    "endpoint",
                    Some(ns.name()),
                    json!({"endpoint": endpoint, "signatureVersion": "v3"}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("endpoint {endpoint} refused: {e}"));
    }

    let created = cluster
        .create(
            &dry_run(),
            &object(
                "ClusterEiamProvider",
                "production",
                None,
                provider_spec(json!({
                    "auth": {"rrsa": {"roleArn": "acs:ram::1:role/eiam", "oidcProviderArn": "acs:ram::1:oidc-provider/ack"}},
                    "allowedNamespaces": {"names": ["billing"], "selector": {"matchLabels": {"team": "billing"}}},
                    "allowedApplications": [{"instanceId": "idaas_*", "applicationId": "app_billing-*"}],
                    "qps": 5
                })),
            ),
        )
        .await
        .expect("ClusterEiamProvider with RRSA and allow-lists");
    let rrsa = &created.data["spec"]["auth"]["rrsa"];
    assert_eq!(
        rrsa["tokenFile"],
        "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"
    );
    assert_eq!(rrsa["sessionName"], "eiam-operator");

    cluster
        .create(
            &dry_run(),
            &object(
                "ClusterEiamProvider",
                "with-ak",
                None,
                provider_spec(json!({"auth": {"accessKey": {"secretRef": {"name": "eiam-ak", "namespace": "ops", "securityTokenKey": "token"}}}})),
            ),
        )
        .await
        .expect("ClusterEiamProvider with a namespaced AccessKey Secret");
}
