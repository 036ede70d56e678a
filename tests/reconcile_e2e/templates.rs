//! Templated Secret data (issue 15, part 1): `spec.target.template` rendered into the Secret, repaired after drift,
//! re-published without a new EIAM secret when the template (or its Secret type) changes; invalid templates refused
//! at admission where CEL can tell, otherwise `Stalled`/`InvalidTemplate` naming the key and line before anything is
//! minted — and no secret value in any message (the leak scan of `Scenario::finish`, plus explicit checks).

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

fn keys(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeSet<String> {
    secret
        .data
        .as_ref()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_keys_are_rendered_repaired_and_republished_on_a_template_change_without_minting()
{
    const APP: &str = "app_templated";
    let mut s = Scenario::new("templates", &[APP]).await;
    s.start_operator().await;
    s.create(
        "web",
        json!({
            "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
            "target": { "template": { "data": {
                "application.yaml": "oauth:\n  client-id: {{ clientId }}\n  client-secret: {{ clientSecret }}\n  expires-at: \"{{ expiresAt }}\"\n",
                "ids": "{{ instanceId }}/{{ applicationId }}/{{ secretId }}",
                "config.json": "{\"secret\": {{ clientSecret | tojson }}}"
            }}}
        }),
    )
    .await;
    let ready = s.wait_ready("web").await;
    let secret_id = current_id(&ready).expect("current secret");
    let client_id = ready
        .status
        .as_ref()
        .and_then(|s| s.client_id.clone())
        .expect("clientId");
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1);
    let value = held[0].client_secret.clone();

    // Only the rendered keys, each rendered with the real values.
    let secret = s.secret_api().get("web").await.expect("the Secret");
    assert_eq!(
        keys(&secret),
        BTreeSet::from([
            "application.yaml".into(),
            "config.json".into(),
            "ids".into()
        ])
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let expires_at = annotation(&secret, "eiam-operator.io/expires-at");
    assert!(expires_at.starts_with("20"), "{expires_at}");
    let yaml = format!(
        "oauth:\n  client-id: {client_id}\n  client-secret: {value}\n  expires-at: \"{expires_at}\"\n"
    );
    assert_eq!(data(&secret, "application.yaml"), yaml);
    assert_eq!(
        data(&secret, "ids"),
        format!("{INSTANCE}/{APP}/{secret_id}")
    );
    assert_eq!(
        data(&secret, "config.json"),
        format!("{{\"secret\": {}}}", serde_json::to_string(&value).unwrap())
    );
    assert!(!annotation(&secret, "eiam-operator.io/template-hash").is_empty());
    assert_eq!(s.fake.count("Create").await, 1);

    // Drift: an edited rendered key is restored from EIAM (Obtain), not re-minted.
    let obtains = s.fake.count("Obtain").await;
    s.secret_api()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "application.yaml": "tampered" } })),
        )
        .await
        .expect("edit the Secret");
    s.wait_secret("web", "application.yaml restored", |sec| {
        data(sec, "application.yaml") == yaml
    })
    .await;
    assert_eq!(s.fake.count("Create").await, 1, "no Create for drift");
    assert_eq!(s.fake.count("Obtain").await, obtains + 1, "one Obtain");
    s.wait_event("web", "Normal", "Repaired").await;

    // A template change re-publishes the same EIAM secret: an edited entry, a removed one, the plain keys asked
    // for explicitly next to the template.
    s.patch(
        "web",
        json!({ "spec": { "target": {
            "keys": { "clientId": "CLIENT_ID", "clientSecret": "CLIENT_SECRET" },
            "template": { "data": { "application.yaml": "secret={{ clientSecret }}\n", "ids": null } }
        }}}),
    )
    .await;
    let republished = s
        .wait_secret("web", "the new template rendered", |sec| {
            data(sec, "application.yaml") == format!("secret={value}\n")
        })
        .await;
    assert_eq!(
        keys(&republished),
        BTreeSet::from([
            "CLIENT_ID".into(),
            "CLIENT_SECRET".into(),
            "application.yaml".into(),
            "config.json".into()
        ]),
        "the removed entry is gone, the plain keys are there"
    );
    assert_eq!(data(&republished, "CLIENT_SECRET"), value);
    // The Secret was created (POST, recorded as an `Update`), then applied: the removal above needed the operator's
    // two entries folded into one `Apply` entry, or the create's would have kept the removed key.
    let entries: Vec<(String, String)> = republished
        .managed_fields()
        .iter()
        .filter(|e| e.manager.as_deref() == Some("eiam-operator"))
        .map(|e| {
            (
                e.operation.clone().unwrap_or_default(),
                e.subresource.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [("Apply".to_owned(), String::new())],
        "one owner for the operator's fields"
    );
    assert_eq!(
        annotation(&republished, "eiam-operator.io/secret-id"),
        secret_id
    );
    s.wait_ready("web").await;
    assert_eq!(
        s.fake.count("Create").await,
        1,
        "a template change mints nothing"
    );

    // A new Secret type: Kubernetes cannot change it in place, so the Secret is written anew — still no Create.
    let before = s.secret_api().get("web").await.unwrap();
    s.patch(
        "web",
        json!({ "spec": { "target": {
            "keys": null,
            "template": { "type": "kubernetes.io/basic-auth",
                          "data": { "username": "{{ clientId }}", "password": "{{ clientSecret }}",
                                    "application.yaml": null, "config.json": null } }
        }}}),
    )
    .await;
    let retyped = s
        .wait_secret("web", "a basic-auth Secret", |sec| {
            sec.type_.as_deref() == Some("kubernetes.io/basic-auth")
        })
        .await;
    assert_ne!(retyped.uid(), before.uid(), "re-created");
    assert_eq!(
        keys(&retyped),
        BTreeSet::from(["password".into(), "username".into()])
    );
    assert_eq!(data(&retyped, "password"), value);
    assert_eq!(data(&retyped, "username"), client_id);
    s.wait_ready("web").await;
    assert_eq!(s.fake.count("Create").await, 1);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_templates_are_refused_naming_the_key_before_anything_is_minted_and_never_quote_the_secret()
 {
    const APP: &str = "app_bad_template";
    let mut s = Scenario::new("templates-invalid", &[APP]).await;
    s.start_operator().await;

    // Admission: an unknown variable is refused by the API server, naming the field and the variables.
    let typo: eiam_operator::api::ApplicationClientSecret = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": "typo" },
        "spec": { "instanceId": INSTANCE, "applicationId": APP,
                  "target": { "template": { "data": { "app.env": "SECRET={{ clientSecert }}" } } } }
    }))
    .unwrap();
    match s.acs_api().create(&PostParams::default(), &typo).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status
                    .message
                    .contains("spec.target.template.data[\"app.env\"]")
                    && status.message.contains("clientSecret, secretId"),
                "{}",
                status.message
            );
        }
        other => panic!("a template with an unknown variable was not refused: {other:?}"),
    }

    // A syntax error admission cannot see: Stalled before any EIAM call, naming the key and the line.
    s.create(
        "broken",
        json!({
            "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
            "target": { "template": { "data": {
                "ok": "{{ clientId }}",
                "app.env": "ID={{ clientId }}\nSECRET={% if clientSecret %}{{ clientSecret }}\n"
            }}}
        }),
    )
    .await;
    let stalled = s.wait_stalled("broken", "InvalidTemplate").await;
    let message = condition(&stalled, "Stalled").unwrap().message.clone();
    assert!(
        message.contains("spec.target.template.data[\"app.env\"]") && message.contains("line "),
        "{message}"
    );
    assert_eq!(
        condition(&stalled, "Ready").map(|c| c.reason.as_str()),
        Some("InvalidTemplate")
    );
    s.wait_event("broken", "Warning", "InvalidTemplate").await;
    assert!(
        s.fake.calls().await.is_empty(),
        "an invalid template cost no EIAM call"
    );
    assert!(s.secret_api().get_opt("broken").await.unwrap().is_none());

    // A template that renders with placeholders but fails on the real secret: the secret is minted, the publish is
    // refused with the key and line and without the engine's details (they could quote the value).
    s.patch(
        "broken",
        json!({ "spec": { "target": { "template": { "data": {
            "app.env": "{% if clientSecret != 'placeholder-client-secret' %}{{ clientSecret + 1 }}{% endif %}"
        }}}}}),
    )
    .await;
    let refused = s
        .wait_for(
            "broken",
            "Stalled InvalidTemplate for the real values",
            SOON,
            |o| {
                condition(o, "Stalled")
                    .filter(|c| {
                        c.status == "True"
                            && c.reason == "InvalidTemplate"
                            && c.message.contains("real values")
                    })
                    .map(|c| c.message.clone())
            },
        )
        .await;
    assert!(
        refused.contains("spec.target.template.data[\"app.env\"]:")
            && refused.contains("position and details withheld")
            && !refused.contains("line"),
        "{refused}"
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "minted once");
    assert!(!refused.contains(&held[0].client_secret));

    // Fixed: published with the secret minted before, no second Create.
    s.patch(
        "broken",
        json!({ "spec": { "target": { "template": { "data": { "app.env": "SECRET={{ clientSecret }}" } } } } }),
    )
    .await;
    let ready = s.wait_ready("broken").await;
    assert_eq!(
        current_id(&ready).as_deref(),
        Some(held[0].secret_id.as_str())
    );
    let secret = s.secret_api().get("broken").await.unwrap();
    assert_eq!(
        data(&secret, "app.env"),
        format!("SECRET={}", held[0].client_secret)
    );
    assert_eq!(s.fake.count("Create").await, 1);

    // Broken again after publishing: Stalled, and the published Secret is left as it was.
    s.patch(
        "broken",
        json!({ "spec": { "target": { "template": { "data": { "app.env": "{% for %}" } } } } }),
    )
    .await;
    s.wait_for("broken", "Stalled InvalidTemplate again", SOON, |o| {
        condition(o, "Stalled")
            .filter(|c| {
                c.status == "True"
                    && c.reason == "InvalidTemplate"
                    && !c.message.contains("real values")
            })
            .map(|_| ())
    })
    .await;
    let kept = s.secret_api().get("broken").await.unwrap();
    assert_eq!(data(&kept, "app.env"), data(&secret, "app.env"));
    assert_eq!(s.fake.count("Create").await, 1);
    s.finish().await;
}
