//! The generated CRDs, checked without a cluster: the committed `crds/` is current, every admission rule sits on
//! the field it guards, enums and defaults are what DESIGN.md promises, and CEL cost stays bounded.
//! (The API server actually enforcing the rules is tested in `crd_admission.rs` against a real kube-apiserver.)

use std::time::Duration;

use eiam_operator::api::{
    self, ApplicationClientSecret, ApplicationClientSecretSpec, ClusterEiamProvider,
    CreationPolicy, DeletionPolicy, EiamProvider, ProviderKind, SignatureVersion, cel, crds,
    parse_duration,
};
use kube::{CustomResourceExt, Resource};
use serde_json::{Value, json};

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .expect("json")
}

/// Follows `properties` down a dotted path, e.g. `spec.rotation.gracePeriod`.
fn field<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, name| {
        node.get("properties")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("no field {name} in path {path}"))
    })
}

fn rules_at(node: &Value) -> Vec<(String, String)> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap_or_default().to_owned(),
                        r["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_rule(schema: &Value, path: &str, rule: cel::CelRule) {
    let node = if path.is_empty() {
        schema
    } else {
        field(schema, path)
    };
    assert!(
        rules_at(node)
            .iter()
            .any(|(r, m)| r == rule.rule && m == rule.message),
        "rule {:?} missing at {path}",
        rule.message
    );
}

fn enum_at(schema: &Value, path: &str) -> Vec<String> {
    field(schema, path)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum at {path}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn committed_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let documents = crds::render_all().expect("render");
    let names: Vec<&str> = documents.iter().map(|d| d.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "applicationclientsecrets.eiam-operator.io.yaml",
            "eiamproviders.eiam-operator.io.yaml",
            "clustereiamproviders.eiam-operator.io.yaml",
        ]
    );
    for document in &documents {
        let on_disk = std::fs::read_to_string(dir.join(&document.file_name))
            .unwrap_or_else(|e| panic!("crds/{}: {e}; run `make crds`", document.file_name));
        assert!(
            on_disk == document.yaml,
            "crds/{} is out of date: run `make crds` and commit",
            document.file_name
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).expect("crds/").count(),
        documents.len(),
        "crds/ holds files crdgen does not generate"
    );
    // Deterministic: a second rendering gives the same bytes.
    assert_eq!(crds::render_all().expect("render"), documents);
}

#[test]
fn names_scope_and_subresources() {
    let acs = ApplicationClientSecret::crd();
    assert_eq!(
        acs.metadata.name.as_deref(),
        Some("applicationclientsecrets.eiam-operator.io")
    );
    assert_eq!(acs.spec.group, api::GROUP);
    assert_eq!(acs.spec.versions[0].name, api::VERSION);
    assert_eq!(acs.spec.scope, "Namespaced");
    assert_eq!(
        acs.spec.names.short_names,
        Some(vec!["acsecret".to_owned()])
    );
    assert_eq!(acs.spec.names.categories, Some(vec!["eiam".to_owned()]));
    assert!(
        acs.spec.versions[0]
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );

    let provider = EiamProvider::crd();
    assert_eq!(provider.spec.scope, "Namespaced");
    assert!(
        provider.spec.versions[0]
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );
    let cluster = ClusterEiamProvider::crd();
    assert_eq!(cluster.spec.scope, "Cluster");
    assert_eq!(
        cluster.metadata.name.as_deref(),
        Some("clustereiamproviders.eiam-operator.io")
    );
}

#[test]
fn printer_columns() {
    let columns: Vec<String> = ApplicationClientSecret::crd().spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, ["Ready", "Secret", "Expires", "Renews", "Age"]);
    let provider_columns: Vec<String> = ClusterEiamProvider::crd().spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        provider_columns,
        ["Region", "Endpoint", "Signature", "QPS", "Ready", "Age"]
    );
}

#[test]
fn application_client_secret_rules_sit_on_their_fields() {
    let schema = schema_of(&ApplicationClientSecret::crd());
    assert_rule(&schema, "spec.instanceId", cel::INSTANCE_ID_IMMUTABLE);
    assert_rule(&schema, "spec.applicationId", cel::APPLICATION_ID_IMMUTABLE);
    assert_rule(&schema, "spec.secretId", cel::SECRET_ID_IMMUTABLE);
    assert_rule(&schema, "spec.expiresAfter", cel::EXPIRES_AFTER_RANGE);
    assert_rule(&schema, "spec.renewBefore", cel::RENEW_BEFORE_MINIMUM);
    assert_rule(&schema, "spec", cel::RENEW_BEFORE_NEEDS_EXPIRES_AFTER);
    assert_rule(&schema, "spec", cel::RENEW_BEFORE_LESS_THAN_EXPIRES_AFTER);
    assert_rule(
        &schema,
        "spec.rotation.gracePeriod",
        cel::GRACE_PERIOD_MAXIMUM,
    );
    assert_rule(&schema, "spec.target.keys", cel::TARGET_KEYS_DISTINCT);
    assert_rule(
        &schema,
        "spec.target.template.data",
        cel::TEMPLATE_KEYS_VALID,
    );
    assert_rule(
        &schema,
        "spec.target.template.data",
        cel::TEMPLATE_VARIABLES_KNOWN,
    );
    assert_rule(&schema, "spec.target.labels", cel::TARGET_LABELS_RESERVED);
    assert_rule(
        &schema,
        "spec.target.annotations",
        cel::TARGET_ANNOTATIONS_RESERVED,
    );

    for id in ["spec.instanceId", "spec.applicationId"] {
        assert_eq!(field(&schema, id)["minLength"], 1, "{id}");
    }
    for duration in [
        "spec.expiresAfter",
        "spec.renewBefore",
        "spec.rotation.gracePeriod",
    ] {
        assert_eq!(
            field(&schema, duration)["pattern"],
            cel::DURATION_PATTERN,
            "{duration}"
        );
    }
    let required: Vec<&str> = field(&schema, "spec")["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["applicationId", "instanceId"]);
}

#[test]
fn provider_rules_sit_on_their_fields() {
    for (crd, local_rule) in [
        (EiamProvider::crd(), cel::EIAM_PROVIDER_SECRET_REF_LOCAL),
        (
            ClusterEiamProvider::crd(),
            cel::CLUSTER_PROVIDER_SECRET_REF_NAMESPACED,
        ),
    ] {
        let schema = schema_of(&crd);
        assert_rule(&schema, "spec", cel::PROVIDER_REGION_OR_ENDPOINT);
        assert_rule(&schema, "spec", local_rule);
        assert_rule(&schema, "spec.endpoint", cel::PROVIDER_ENDPOINT_HTTPS);
        assert_rule(&schema, "spec.auth", cel::PROVIDER_AUTH_EXACTLY_ONE);
        assert_rule(&schema, "spec.qps", cel::PROVIDER_QPS_RANGE);
        assert_eq!(enum_at(&schema, "spec.signatureVersion"), ["v1", "v3"]);
        assert_eq!(field(&schema, "spec.signatureVersion")["default"], "v1");
    }
    let cluster = schema_of(&ClusterEiamProvider::crd());
    field(&cluster, "spec.allowedNamespaces.selector");
    let namespaced = schema_of(&EiamProvider::crd());
    assert!(
        field(&namespaced, "spec")["properties"]
            .get("allowedNamespaces")
            .is_none(),
        "allowedNamespaces only makes sense on the cluster kind"
    );
}

#[test]
fn enums_and_defaults() {
    let schema = schema_of(&ApplicationClientSecret::crd());
    assert_eq!(
        enum_at(&schema, "spec.providerRef.kind"),
        ["EiamProvider", "ClusterEiamProvider"]
    );
    let target_kind =
        &field(&schema, "spec.rotation.restartTargets")["items"]["properties"]["kind"];
    assert_eq!(
        target_kind["enum"],
        json!(["Deployment", "StatefulSet", "DaemonSet"])
    );
    assert_eq!(
        enum_at(&schema, "spec.target.creationPolicy"),
        ["Owner", "Orphan"]
    );
    assert_eq!(
        enum_at(&schema, "spec.deletionPolicy"),
        ["Delete", "Retain"]
    );

    assert_eq!(field(&schema, "spec.rotation.gracePeriod")["default"], "1h");
    assert_eq!(
        field(&schema, "spec.rotation")["default"],
        json!({"gracePeriod": "1h"})
    );
    assert_eq!(
        field(&schema, "spec.target.keys.clientId")["default"],
        "clientId"
    );
    assert_eq!(
        field(&schema, "spec.target.keys.clientSecret")["default"],
        "clientSecret"
    );
    assert_eq!(
        field(&schema, "spec.target.creationPolicy")["default"],
        "Owner"
    );
    assert_eq!(field(&schema, "spec.deletionPolicy")["default"], "Delete");
    assert_eq!(
        field(&schema, "spec.providerRef.kind")["default"],
        "EiamProvider"
    );
    assert!(
        field(&schema, "spec.expiresAfter").get("default").is_none(),
        "no expiry by default"
    );
}

/// Walks every schema node, calling `visit(path, node)`.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(&format!("{path}{{}}"), values, visit);
    }
}

#[test]
fn every_rule_message_names_its_field_and_cel_inputs_are_bounded() {
    for crd in crds::all() {
        let schema = schema_of(&crd);
        walk("", &schema, &mut |path, node| {
            for (rule, message) in rules_at(node) {
                assert!(
                    message.starts_with("spec."),
                    "{path}: message {message:?} does not name a field"
                );
                assert!(
                    cel::ALL_RULES
                        .iter()
                        .any(|r| r.rule == rule && r.message == message),
                    "{path}: rule not in cel::ALL_RULES: {rule}"
                );
                // The API server estimates CEL cost from size bounds: without them it rejects the CRD.
                match node["type"].as_str() {
                    Some("string") => assert!(
                        node.get("maxLength").is_some(),
                        "{path}: string with CEL needs maxLength"
                    ),
                    Some("array") => assert!(
                        node.get("maxItems").is_some(),
                        "{path}: list with CEL needs maxItems"
                    ),
                    Some("object") if node.get("additionalProperties").is_some() => assert!(
                        node.get("maxProperties").is_some(),
                        "{path}: map with CEL needs maxProperties"
                    ),
                    _ => {}
                }
            }
        });
    }
}

fn full_example() -> Value {
    json!({
        "apiVersion": "eiam-operator.io/v1alpha1",
        "kind": "ApplicationClientSecret",
        "metadata": {"name": "billing-oidc", "namespace": "billing", "generation": 3,
                     "annotations": {"eiam-operator.io/rotate-requested-at": "2026-01-01T00:00:00Z"}},
        "spec": {
            "instanceId": "idaas_ue2jvisn35ea5lmthk267xxxxx",
            "applicationId": "app_mkv7rgt4d7i4u7zqtzev2mxxxx",
            "providerRef": {"kind": "ClusterEiamProvider", "name": "production"},
            "expiresAfter": "2160h",
            "renewBefore": "720h",
            "rotation": {"gracePeriod": "2h", "restartTargets": [{"kind": "Deployment", "name": "billing-api"}]},
            "target": {"name": "billing-oidc-client", "keys": {"clientId": "CLIENT_ID", "clientSecret": "CLIENT_SECRET"},
                       "labels": {"team": "billing"}, "annotations": {"reloader": "true"}, "creationPolicy": "Orphan"},
            "deletionPolicy": "Retain"
        },
        "status": {
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Issued", "message": "published sci_2",
                            "lastTransitionTime": "2026-01-01T00:00:05Z", "observedGeneration": 3}],
            "clientId": "app_mkv7rgt4d7i4u7zqtzev2mxxxx",
            "currentSecretId": "sci_2", "previousSecretId": "sci_1",
            "notAfter": "2026-03-31T00:00:05Z", "renewalTime": "2026-03-01T00:00:05Z",
            "previousRetireAt": "2026-01-01T02:00:05Z", "lastRotationTime": "2026-01-01T00:00:05Z",
            "lastHandledRotateAt": "2026-01-01T00:00:00Z", "secretName": "billing-oidc-client",
            "unmanagedSecretIds": []
        }
    })
}

#[test]
fn a_full_example_round_trips() {
    let original = full_example();
    let resource: ApplicationClientSecret =
        serde_json::from_value(original.clone()).expect("deserialise");
    assert_eq!(
        resource.spec.provider_ref.as_ref().map(|p| p.kind),
        Some(ProviderKind::ClusterEiamProvider)
    );
    assert_eq!(resource.spec.target.creation_policy, CreationPolicy::Orphan);
    assert_eq!(resource.spec.deletion_policy, DeletionPolicy::Retain);
    assert_eq!(resource.secret_name(), "billing-oidc-client");
    assert_eq!(resource.rotate_requested_at(), Some("2026-01-01T00:00:00Z"));
    assert!(resource.is_ready());
    assert_eq!(resource.spec.grace_period(), Ok(Duration::from_secs(7200)));
    assert_eq!(
        resource.spec.effective_renew_before(),
        Ok(Some(Duration::from_secs(720 * 3600)))
    );
    let status = resource.status.as_ref().expect("status");
    assert_eq!(
        status
            .not_after
            .as_ref()
            .map(|t| t.0.to_string())
            .as_deref(),
        Some("2026-03-31T00:00:05Z")
    );
    assert_eq!(
        serde_json::to_value(&resource).expect("serialise"),
        original
    );
}

#[test]
fn a_minimal_resource_gets_the_documented_defaults() {
    let resource: ApplicationClientSecret = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1",
        "kind": "ApplicationClientSecret",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"instanceId": "idaas_1", "applicationId": "app_1"}
    }))
    .expect("deserialise");
    assert_eq!(
        resource.spec,
        ApplicationClientSecretSpec::new("idaas_1", "app_1")
    );
    assert_eq!(resource.secret_name(), "web");
    // Without a template, the plain keys default to clientId and clientSecret.
    let keys = resource.spec.target.plain_keys().expect("plain keys");
    assert_eq!(keys.client_id, "clientId");
    assert_eq!(keys.client_secret, "clientSecret");
    assert_eq!(resource.spec.target.creation_policy, CreationPolicy::Owner);
    assert_eq!(resource.spec.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(resource.spec.grace_period(), Ok(Duration::from_secs(3600)));
    assert_eq!(resource.spec.expires_after(), Ok(None));
    assert_eq!(resource.spec.effective_renew_before(), Ok(None));
    assert!(resource.status.is_none());
    assert!(!resource.is_ready());

    let mut spec = ApplicationClientSecretSpec::new("idaas_1", "app_1");
    spec.expires_after = Some("2160h".into());
    assert_eq!(
        spec.effective_renew_before(),
        Ok(Some(Duration::from_secs(720 * 3600)))
    );

    // Status fields are all optional and absent ones are not serialised.
    let status = serde_json::to_value(api::ApplicationClientSecretStatus::default()).expect("json");
    assert_eq!(status, json!({}));
}

#[test]
fn providers_deserialise_with_defaults() {
    let provider: EiamProvider = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": {"region": "cn-hangzhou", "auth": {"accessKey": {"secretRef": {"name": "eiam-ak"}}}}
    }))
    .expect("deserialise");
    assert_eq!(provider.spec.signature_version, SignatureVersion::V1);
    let secret_ref = &provider
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.access_key.as_ref())
        .expect("ak")
        .secret_ref;
    assert_eq!(secret_ref.access_key_id_key, "accessKeyId");
    assert_eq!(secret_ref.access_key_secret_key, "accessKeySecret");
    assert_eq!(secret_ref.security_token_key, None);
    assert_eq!(
        provider.spec.settings().endpoint_url().as_deref(),
        Some("https://eiam.cn-hangzhou.aliyuncs.com")
    );

    let cluster: ClusterEiamProvider = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ClusterEiamProvider",
        "metadata": {"name": "production"},
        "spec": {"region": "cn-shanghai", "signatureVersion": "v3",
                 "auth": {"rrsa": {"roleArn": "acs:ram::1:role/eiam", "oidcProviderArn": "acs:ram::1:oidc-provider/ack"}},
                 "allowedNamespaces": {"names": ["billing"]},
                 "allowedApplications": [{"instanceId": "idaas_*", "applicationId": "app_billing-*"}]}
    }))
    .expect("deserialise");
    assert_eq!(cluster.spec.signature_version, SignatureVersion::V3);
    let rrsa = cluster
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.rrsa.as_ref())
        .expect("rrsa");
    assert_eq!(rrsa.token_file, api::provider::DEFAULT_RRSA_TOKEN_FILE);
    assert_eq!(rrsa.session_name, "eiam-operator");
    let no_labels = Default::default();
    assert!(cluster.spec.allows_namespace("billing", &no_labels));
    assert!(!cluster.spec.allows_namespace("web", &no_labels));
    assert!(
        cluster
            .spec
            .settings()
            .allows_application("idaas_9", "app_billing-api")
    );
    assert!(
        !cluster
            .spec
            .settings()
            .allows_application("idaas_9", "app_web")
    );
    assert!(
        ClusterEiamProvider::crd().spec.scope == "Cluster"
            && EiamProvider::kind(&()) == "EiamProvider"
    );
}

#[test]
fn parse_duration_reads_what_the_api_server_validates() {
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(
        parse_duration("26280h"),
        Ok(Duration::from_secs(26_280 * 3600))
    );
    assert_eq!(parse_duration("23h59m45s"), Ok(Duration::from_secs(86_385)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    for bad in ["", "3d", "10", "-1h", "1h-", "h", "1 h"] {
        let err = parse_duration(bad).expect_err(bad);
        assert!(err.to_string().contains("duration"), "{bad}: {err}");
    }
}
