//! Behaviour 12: providers. An `EiamProvider` with an AccessKey Secret in the resource's namespace (missing at
//! first: a clear condition, then recovery on its own once the Secret appears); a `ClusterEiamProvider` whose
//! `allowedNamespaces` / `allowedApplications` refuse a resource: `Stalled`, reason `NotAllowed`, no EIAM call.

use eiam_operator::api::{ClusterEiamProvider, EiamProvider};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::common::fake_eiam::FakeSpec;
use crate::common::wait_until;
use crate::support::*;

const PROVIDER_AK: (&str, &str) = ("LTAI5tE2eTeamProviderKey", "team-provider-secret");
const CLUSTER_AK: (&str, &str) = ("LTAI5tE2eClusterProviderKey", "cluster-provider-secret");

fn access_key_secret(name: &str, key: (&str, &str)) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "stringData": { "accessKeyId": key.0, "accessKeySecret": key.1 }
    }))
    .expect("a Secret")
}

/// The EiamProvider `team` at `endpoint`, with its AccessKey in the Secret `team-ak` of its own namespace.
fn team_provider(endpoint: &str) -> EiamProvider {
    serde_json::from_value(json!({
        "metadata": { "name": "team" },
        "spec": { "endpoint": endpoint,
                  "auth": { "accessKey": { "secretRef": { "name": "team-ak" } } } }
    }))
    .expect("an EiamProvider")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_providers_supply_credentials_and_enforce_their_allow_lists() {
    const TEAM_APP: &str = "app_team";
    let mut s = Scenario::with_fake(
        "b12-providers",
        &[TEAM_APP],
        FakeSpec::new().access_key(PROVIDER_AK.0, PROVIDER_AK.1),
    )
    .await;
    let ns = s.namespace().to_owned();
    s.start_operator().await;

    // --- EiamProvider whose credentials Secret does not exist yet.
    let provider = team_provider(s.fake.url());
    s.api::<EiamProvider>()
        .create(&PostParams::default(), &provider)
        .await
        .expect("create the EiamProvider");
    s.create(
        "via-team",
        json!({ "instanceId": INSTANCE, "applicationId": TEAM_APP,
                "providerRef": { "kind": "EiamProvider", "name": "team" } }),
    )
    .await;
    let stalled = s.wait_stalled("via-team", "CredentialsMissing").await;
    let message = condition(&stalled, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&format!("Secret {ns}/team-ak does not exist")),
        "the condition says what is missing: {message}"
    );
    assert!(
        s.fake.calls().await.is_empty(),
        "no EIAM call without credentials"
    );
    // The provider itself says so too (what `kubectl get eiamp` shows in its READY column).
    let not_ready = wait_provider(
        &s.api::<EiamProvider>(),
        "team",
        "False",
        "CredentialsMissing",
    )
    .await;
    assert!(
        not_ready
            .message
            .contains(&format!("Secret {ns}/team-ak does not exist")),
        "{not_ready:?}"
    );

    // The Secret appears: the resource recovers by itself, using the provider's AccessKey.
    s.secret_api()
        .create(
            &PostParams::default(),
            &access_key_secret("team-ak", PROVIDER_AK),
        )
        .await
        .expect("create the credentials Secret");
    let ready = s.wait_ready("via-team").await;
    assert!(current_id(&ready).is_some());
    // The provider turns Ready on its own once the Secret appears (no edit of the provider needed).
    let resolved = wait_provider(&s.api::<EiamProvider>(), "team", "True", "Resolved").await;
    assert!(
        resolved.message.contains(s.fake.url()) && resolved.message.contains("credentials"),
        "{resolved:?}"
    );
    let calls = s.fake.calls().await;
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|c| c.access_key_id.as_deref() == Some(PROVIDER_AK.0)),
        "every call signed with the provider's AccessKey: {:?}",
        calls.iter().map(|c| &c.access_key_id).collect::<Vec<_>>()
    );

    // --- ClusterEiamProviders with allow-lists, on an EIAM of their own (to count its calls).
    let cluster_fake = FakeSpec::new()
        .access_key(CLUSTER_AK.0, CLUSTER_AK.1)
        .application(INSTANCE, "app_allowed_1")
        .application(INSTANCE, "app_allowed_2")
        .application(INSTANCE, "app_other")
        .start()
        .await;
    s.secret_api()
        .create(
            &PostParams::default(),
            &access_key_secret("cluster-ak", CLUSTER_AK),
        )
        .await
        .expect("create the cluster provider's Secret");
    let cluster_providers: Api<ClusterEiamProvider> = Api::all(s.client.clone());
    let elsewhere = format!("{ns}-elsewhere");
    let only_allowed = format!("{ns}-allowed-apps");
    let auth = json!({ "accessKey": { "secretRef": { "name": "cluster-ak", "namespace": ns } } });
    for (name, spec) in [
        (
            &elsewhere,
            json!({ "endpoint": cluster_fake.url(), "auth": auth,
                    "allowedNamespaces": { "names": ["some-other-namespace"] } }),
        ),
        (
            &only_allowed,
            json!({ "endpoint": cluster_fake.url(), "auth": auth,
                    "allowedNamespaces": { "names": [ns] },
                    "allowedApplications": [{ "instanceId": INSTANCE, "applicationId": "app_allowed_*" }] }),
        ),
    ] {
        let provider: ClusterEiamProvider =
            serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
                .expect("a ClusterEiamProvider");
        cluster_providers
            .create(&PostParams::default(), &provider)
            .await
            .expect("create a ClusterEiamProvider");
    }
    s.create(
        "wrong-namespace",
        json!({ "instanceId": INSTANCE, "applicationId": "app_allowed_2",
                "providerRef": { "kind": "ClusterEiamProvider", "name": elsewhere } }),
    )
    .await;
    s.create(
        "wrong-application",
        json!({ "instanceId": INSTANCE, "applicationId": "app_other",
                "providerRef": { "kind": "ClusterEiamProvider", "name": only_allowed } }),
    )
    .await;
    let not_allowed_ns = s.wait_stalled("wrong-namespace", "NotAllowed").await;
    let not_allowed_app = s.wait_stalled("wrong-application", "NotAllowed").await;
    let ns_message = condition(&not_allowed_ns, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let app_message = condition(&not_allowed_app, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        ns_message.contains(&format!("does not allow namespace {ns}")),
        "{ns_message}"
    );
    assert!(
        app_message.contains(&format!("does not allow application {INSTANCE}/app_other")),
        "{app_message}"
    );
    assert_eq!(kstatus(&not_allowed_ns), KStatus::Failed);
    assert_eq!(
        s.event_count("wrong-namespace", "Warning", "NotAllowed")
            .await,
        1
    );

    // Positive control: the allowed application through the same provider works.
    s.create(
        "allowed",
        json!({ "instanceId": INSTANCE, "applicationId": "app_allowed_1",
                "providerRef": { "kind": "ClusterEiamProvider", "name": only_allowed } }),
    )
    .await;
    s.wait_ready("allowed").await;
    s.wait_reconciled("wrong-namespace").await;
    s.wait_reconciled("wrong-application").await;
    let cluster_calls = cluster_fake.calls().await;
    assert!(
        !cluster_calls.is_empty(),
        "the allowed resource called EIAM"
    );
    for call in &cluster_calls {
        assert_eq!(
            call.params.get("ApplicationId").map(String::as_str),
            Some("app_allowed_1"),
            "no EIAM call for a resource the provider does not allow: {call:?}"
        );
        assert_eq!(call.access_key_id.as_deref(), Some(CLUSTER_AK.0));
    }
    for refused in ["app_other", "app_allowed_2"] {
        assert!(
            cluster_fake.secrets(INSTANCE, refused).await.is_empty(),
            "nothing minted for the refused {refused}"
        );
    }

    for name in [&elsewhere, &only_allowed] {
        let _ = cluster_providers
            .delete(name, &DeleteParams::default())
            .await;
    }
    // The cluster provider's EIAM minted one secret: the leak scan covers it too.
    let cluster_values = cluster_fake.every_value_held().await;
    assert_eq!(cluster_values.len(), 1);
    s.extra_values.extend(cluster_values);
    s.finish().await;
}

/// A ClusterEiamProvider's `Ready` is reported by an operator that watches all namespaces: False while its AccessKey
/// Secret is missing, True as soon as the Secret appears, and False again when it goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_cluster_providers_report_whether_they_are_usable() {
    let cp: &'static crate::common::ControlPlane =
        Box::leak(Box::new(crate::common::private_control_plane().await));
    let mut s = Scenario::on(cp, "b12-cluster-status", &[], FakeSpec::new()).await;
    let ns = s.namespace().to_owned();
    let cluster_wide = crate::common::operator::OperatorSpec::new(&cp.kubeconfig)
        .default_endpoint(s.fake.url())
        .grant_default_provider("*")
        .access_key(AK_ID, AK_SECRET);
    s.start_operator_with(cluster_wide).await;

    let providers: Api<ClusterEiamProvider> = Api::all(s.client.clone());
    let provider: ClusterEiamProvider = serde_json::from_value(json!({
        "metadata": { "name": format!("{ns}-shared") },
        "spec": { "region": "cn-hangzhou",
                  "auth": { "accessKey": { "secretRef": { "name": "shared-ak", "namespace": ns } } } }
    }))
    .expect("a ClusterEiamProvider");
    let name = provider.name_any();
    providers
        .create(&PostParams::default(), &provider)
        .await
        .expect("create the ClusterEiamProvider");
    let missing = wait_provider(&providers, &name, "False", "CredentialsMissing").await;
    assert!(
        missing
            .message
            .contains(&format!("Secret {ns}/shared-ak does not exist")),
        "{missing:?}"
    );

    s.secret_api()
        .create(
            &PostParams::default(),
            &access_key_secret("shared-ak", CLUSTER_AK),
        )
        .await
        .expect("create the credentials Secret");
    let resolved = wait_provider(&providers, &name, "True", "Resolved").await;
    assert!(
        resolved
            .message
            .contains("https://eiam.cn-hangzhou.aliyuncs.com"),
        "{resolved:?}"
    );

    s.secret_api()
        .delete("shared-ak", &DeleteParams::default())
        .await
        .expect("delete the credentials Secret");
    wait_provider(&providers, &name, "False", "CredentialsMissing").await;
    providers
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the ClusterEiamProvider");
    s.finish().await;
    cp.stop();
}

/// Waits until the provider `name` (either kind) has a `Ready` condition with this status and reason, for its
/// current generation; returns the condition.
async fn wait_provider<K>(api: &Api<K>, name: &str, status: &str, reason: &str) -> Condition
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    wait_until(
        format!(
            "{} {name} Ready={status} ({reason})",
            std::any::type_name::<K>()
        ),
        Duration::from_secs(30),
        || async {
            let object = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            let stored = &object["status"];
            (stored["observedGeneration"] == object["metadata"]["generation"]).then_some(())?;
            let conditions: Vec<Condition> =
                serde_json::from_value(stored["conditions"].clone()).ok()?;
            conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == status && c.reason == reason)
        },
    )
    .await
}

/// Issue 23: a provider shows where its EIAM budget stands (`status.budget`, what `kubectl get eiamp` prints as
/// QPS) and says with an Event when EIAM throttled its account and the budget backed off. The fake caps the
/// provider's AccessKey at 1 call/s, unannounced; the budget starts at 10/s, so it meets the cap at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_a_provider_shows_its_budget_and_tells_when_it_backed_off() {
    let applications: Vec<String> = (0..5).map(|i| format!("app_budget_{i}")).collect();
    let names: Vec<&str> = applications.iter().map(String::as_str).collect();
    let mut s = Scenario::with_fake(
        "b12-budget",
        &names,
        FakeSpec::new().access_key(PROVIDER_AK.0, PROVIDER_AK.1),
    )
    .await;
    s.fake
        .set_faults(json!([{ "kind": "qpsCap", "qps": 1 }]))
        .await;
    let spec = s.operator_spec().arg("--provider-status-interval=1s");
    s.start_operator_with(spec).await;
    s.secret_api()
        .create(
            &PostParams::default(),
            &access_key_secret("team-ak", PROVIDER_AK),
        )
        .await
        .expect("create the credentials Secret");
    let provider = team_provider(s.fake.url());
    let providers = s.api::<EiamProvider>();
    providers
        .create(&PostParams::default(), &provider)
        .await
        .expect("create the EiamProvider");
    for application in &applications {
        s.create(
            &application.replace('_', "-"),
            json!({ "instanceId": INSTANCE, "applicationId": application,
                    "providerRef": { "kind": "EiamProvider", "name": "team" } }),
        )
        .await;
    }
    for application in &applications {
        s.wait_ready(&application.replace('_', "-")).await;
    }
    assert!(
        s.fake
            .calls()
            .await
            .iter()
            .any(|c| c.outcome.starts_with("Throttling")),
        "the cap throttled the budget's first requests"
    );

    let budget = wait_until(
        "the provider's status.budget records a back-off",
        Duration::from_secs(30),
        || async {
            let budget = providers.get("team").await.ok()?.status?.budget?;
            budget.last_backoff_time.is_some().then_some(budget)
        },
    )
    .await;
    assert!(
        budget.account.starts_with("acct-") && budget.account.len() == 13,
        "{budget:?}"
    );
    assert!(
        budget.qps > 0.0 && budget.qps <= budget.ceiling && budget.ceiling == 100.0,
        "the account's rate under the provider's ceiling (--max-qps): {budget:?}"
    );
    // The same account in the metrics: the status names the series to look at.
    let scrape = s.operator().scrape().await;
    assert!(
        scrape.contains(&format!(
            "eiam_operator_eiam_budget_backoffs_total{{account=\"{}\"}}",
            budget.account
        )),
        "{scrape}"
    );

    let event = wait_until(
        "a BudgetBackedOff Event about the provider",
        Duration::from_secs(30),
        || async {
            s.api::<Event>()
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("BudgetBackedOff")
                        && e.regarding.as_ref().is_some_and(|r| {
                            r.kind.as_deref() == Some("EiamProvider")
                                && r.name.as_deref() == Some("team")
                        })
                })
        },
    )
    .await;
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains(&budget.account) && note.contains("backed off"),
        "{note}"
    );
    assert!(
        !note.contains(PROVIDER_AK.0) && !note.contains(PROVIDER_AK.1),
        "the Event names the account by its label only: {note}"
    );
    s.finish().await;
}
