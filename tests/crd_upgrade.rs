//! Upgrades that carry the CRDs, on the real API server. The previous release's chart (tests/fixtures/previous-chart:
//! charts/eiam-operator as released before its CRDs became templates, kept verbatim) installs the old CRDs from its
//! `crds/` directory. An operator of this build refuses to act on them and says so — an error log, `/readyz`, the
//! `eiam_operator_crd_schema_current` metric — and a resource created meanwhile is left untouched. `helm upgrade
//! --take-ownership` to this chart replaces the CRDs (an upgrade without it is refused by Helm, as the README says);
//! the operator then starts by itself and reconciles, using the field the old CRD pruned (`spec.target.template`).
//! Uninstalling the release keeps the CRDs and the resources.

mod common;
mod helm_support;
#[path = "helm_support/release.rs"]
mod release;

use std::time::Duration;

use eiam_operator::api::{ANNOTATION_SCHEMA_HASH, ApplicationClientSecret};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use common::fake_eiam::FakeSpec;
use common::operator::{Operator, OperatorSpec};
use common::wait_until;
use release::{IsolatedControlPlane, Release};

const INSTANCE: &str = "idaas_crdupgrade";
const APP: &str = "app_crd_upgrade";
const AK_ID: &str = "LTAI5tCrdUpgradeKey";
const AK_SECRET: &str = "crd-upgrade-access-key-secret";
const ACS_CRD: &str = "applicationclientsecrets.eiam-operator.io";
const SOON: Duration = Duration::from_secs(60);

/// `http://ADDR` the operator logged for `message` (`serving metrics`, `serving health probes`).
fn served_at(operator: &Operator, message: &str) -> String {
    let record = operator
        .records_with(message, None)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {message:?} log line:\n{}", operator.output()));
    format!(
        "http://{}",
        record["fields"]["addr"].as_str().expect("addr")
    )
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The value of a sample (name and labels exactly as exposed) in a Prometheus text scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn annotations(crd: &CustomResourceDefinition) -> std::collections::BTreeMap<String, String> {
    crd.metadata.annotations.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_from_the_previous_chart_carries_the_crds_and_the_operator_waits_for_them() {
    let cp = IsolatedControlPlane::start_with_crds(None).await;
    let admin = cp.client().await;
    let release_ns = cp.namespace("eiam-system").await;
    let apps = cp.namespace("apps").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(INSTANCE, APP)
        .start()
        .await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());

    // The previous release: its crds/ directory is installed by Helm once, without the schema-hash annotation.
    let previous = helm_support::repo().join("tests/fixtures/previous-chart");
    let (mut release, output) =
        Release::install_chart(&cp.kubeconfig, &previous, "eiam-operator", &release_ns, &[]);
    assert!(output.contains("STATUS: deployed"), "{output}");
    let old = crds
        .get(ACS_CRD)
        .await
        .expect("the previous chart installed the CRD");
    assert!(!annotations(&old).contains_key(ANNOTATION_SCHEMA_HASH));

    // This build's operator, on the old CRDs: loud, not ready, and idle.
    let operator = OperatorSpec::new(&cp.kubeconfig)
        .namespace(&apps)
        .default_endpoint(fake.url())
        .grant_default_provider(&apps)
        .access_key(AK_ID, AK_SECRET)
        .start()
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let readyz = format!("{}/readyz", served_at(&operator, "serving health probes"));
    let metrics = format!("{}/metrics", served_at(&operator, "serving metrics"));
    let (status, body) = wait_until(
        format!("/readyz reports the CRDs; operator:\n{}", operator.output()),
        SOON,
        || async {
            let (status, body) = get(&http, &readyz).await;
            body.contains(ACS_CRD).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("no eiam-operator.io/schema-hash annotation")
            && body.contains("upgrade the CRDs")
            && body.contains("eiamproviders.eiam-operator.io"),
        "{body}"
    );
    let scrape = get(&http, &metrics).await.1;
    for name in [
        ACS_CRD,
        "eiamproviders.eiam-operator.io",
        "clustereiamproviders.eiam-operator.io",
    ] {
        assert_eq!(
            sample(
                &scrape,
                &format!("eiam_operator_crd_schema_current{{crd=\"{name}\"}}")
            ),
            Some(0.0),
            "{name}:\n{scrape}"
        );
    }
    let logged = operator.records_with(
        &format!(
            "the installed CRDs do not match this operator: {}",
            eiam_operator::installed_crds::UPGRADE_HINT
        ),
        None,
    );
    assert_eq!(
        logged.len(),
        1,
        "one error per change:\n{}",
        operator.output()
    );
    assert_eq!(logged[0]["level"], "ERROR");

    // A resource using a field this release adds: the old CRD silently prunes it — the bug this is all about.
    let api: Api<ApplicationClientSecret> = Api::namespaced(admin.clone(), &apps);
    let resource = json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": "creds" },
        "spec": { "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                  "target": { "template": { "data": { "app.env": "SECRET={{ clientSecret }}\n" } } } }
    });
    // Created as `kubectl create` would: the API server prunes what the schema does not know (server-side apply
    // would refuse it outright, which is no better for a GitOps tool that applies the new manifests).
    api.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(resource.clone()).unwrap(),
    )
    .await
    .expect("the old CRD accepts a resource");
    let stored = api.get("creds").await.unwrap();
    assert!(
        stored.spec.target.template.is_none(),
        "the old CRD prunes spec.target.template: {:?}",
        stored.spec.target
    );
    // Two re-checks of the CRDs later, nothing has happened to it.
    tokio::time::sleep(
        2 * eiam_operator::installed_crds::RECHECK_INTERVAL + Duration::from_secs(1),
    )
    .await;
    let untouched = api.get("creds").await.unwrap();
    assert!(
        untouched.status.is_none() && untouched.metadata.finalizers.is_none(),
        "the operator acted on a resource of an outdated CRD: {untouched:?}"
    );
    assert!(
        fake.calls().await.is_empty(),
        "no EIAM call before the CRDs match"
    );

    // Helm refuses to adopt CRDs it did not create as part of the release: the README's upgrade says
    // --take-ownership, and this is why.
    let chart = helm_support::chart();
    let refused = helm_support::run(
        "helm",
        &[
            "upgrade",
            "eiam-operator",
            chart.to_str().unwrap(),
            "--namespace",
            &release_ns,
        ],
        Some(&cp.kubeconfig),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("invalid ownership metadata"),
        "a plain helm upgrade over unowned CRDs: {stderr}"
    );
    let output = release.upgrade(&["--take-ownership"]);
    assert!(output.contains("STATUS: deployed"), "{output}");
    let upgraded = crds.get(ACS_CRD).await.unwrap();
    let upgraded_annotations = annotations(&upgraded);
    let expected_hash = eiam_operator::api::crds::expected_schema_hashes()
        .into_iter()
        .find(|(name, _)| name == ACS_CRD)
        .map(|(_, hash)| hash);
    assert_eq!(
        upgraded_annotations.get(ANNOTATION_SCHEMA_HASH),
        expected_hash.as_ref()
    );
    assert_eq!(
        upgraded_annotations
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    assert_eq!(
        upgraded_annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some("eiam-operator"),
        "the release owns the CRDs now"
    );

    // The same manifest applied again (as GitOps would) now keeps the new field.
    api.patch(
        "creds",
        &PatchParams::apply("eiam-operator-tests").force(),
        &Patch::Apply(&resource),
    )
    .await
    .expect("apply on the new CRD");
    assert!(
        api.get("creds")
            .await
            .unwrap()
            .spec
            .target
            .template
            .is_some(),
        "the new CRD keeps spec.target.template"
    );

    // The operator notices on its own, starts, and reconciles the resource that waited, template and all.
    wait_until(
        format!("/readyz 200; operator:\n{}", operator.output()),
        SOON,
        || async { (get(&http, &readyz).await == (200, "leading\n".to_owned())).then_some(()) },
    )
    .await;
    let scrape = get(&http, &metrics).await.1;
    assert_eq!(
        sample(
            &scrape,
            &format!("eiam_operator_crd_schema_current{{crd=\"{ACS_CRD}\"}}")
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        operator
            .records_with("the installed CRDs now match this operator: starting", None)
            .len(),
        1
    );
    let ready = wait_until(
        format!("creds Ready; operator:\n{}", operator.output()),
        SOON,
        || async {
            let acs = api.get("creds").await.ok()?;
            acs.status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(acs)
        },
    )
    .await;
    let current = ready.status.unwrap().current_secret_id.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &apps);
    // (Should the operator have started between the upgrade and the re-apply, the template change re-publishes.)
    let secret = wait_until(
        format!("the templated Secret; operator:\n{}", operator.output()),
        SOON,
        || async {
            let secret = secrets.get_opt("creds").await.ok()??;
            secret
                .data
                .as_ref()?
                .contains_key("app.env")
                .then_some(secret)
        },
    )
    .await;
    let held = fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].secret_id, current);
    let data = secret.data.unwrap();
    // The old CRD stored spec.target.keys with its defaults when the resource was created, so the plain keys are
    // written next to the rendered one: the documented rule for resources from before templates (README).
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["app.env", "clientId", "clientSecret"]
    );
    assert!(api.get("creds").await.unwrap().spec.target.keys.is_some());
    assert_eq!(
        data["app.env"].0,
        format!("SECRET={}\n", held[0].client_secret).into_bytes()
    );

    // Uninstall keeps the CRDs (helm.sh/resource-policy: keep) and so every resource.
    let output = release.uninstall();
    assert!(output.contains("uninstalled"), "{output}");
    for (name, _) in eiam_operator::api::crds::expected_schema_hashes() {
        assert!(
            crds.get_opt(&name).await.unwrap().is_some(),
            "helm uninstall deleted {name}"
        );
    }
    assert!(api.get_opt("creds").await.unwrap().is_some());
}
