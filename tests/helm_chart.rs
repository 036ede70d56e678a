//! The Helm chart without a cluster: `helm lint` and `helm template` in both RBAC modes, the restricted pod, the
//! values schema rejecting bad input by name, and the chart agreeing with the operator binary (CRDs, flags).
//! Installing it into a real API server is `helm_install.rs`; running the operator with its RBAC is
//! `helm_rbac.rs`.

mod helm_support;

use helm_support::{chart, find, grants, of_kind, render, render_err, run_ok};
use serde_json::Value;

/// Value sets that exercise every template: defaults, namespaced mode, and every optional feature at once.
const VALUE_SETS: &[&[&str]] = &[
    &[],
    &["--set", "watchNamespaces={team-a}"],
    &[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "clusterEiamProvider.create=true",
        "--set",
        "cloudCredentials.mode=rrsa",
        "--set",
        "cloudCredentials.rrsa.roleName=eiam-operator",
        "--set",
        "replicaCount=3",
    ],
    &[
        "--set",
        "cloudCredentials.mode=rrsa",
        "--set",
        "cloudCredentials.rrsa.manual=true",
        "--set",
        "cloudCredentials.rrsa.roleArn=acs:ram::1234567890123456:role/eiam-operator",
        "--set",
        "cloudCredentials.rrsa.oidcProviderArn=acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",
        "--set",
        "cloudCredentials.rrsa.stsRegion=cn-hangzhou",
        "--set",
        "cloudCredentials.rrsa.vpcEndpoint=true",
    ],
    &[
        "--set",
        "cloudCredentials.mode=accessKeySecret",
        "--set",
        "cloudCredentials.accessKeySecret.name=eiam-ak",
        "--set",
        "cloudCredentials.accessKeySecret.securityTokenKey=token",
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ],
    &["--set", "crds.enabled=false"],
];

#[test]
fn helm_lint_strict_passes_for_every_value_set() {
    let chart = chart();
    for values in VALUE_SETS {
        let mut args = vec!["lint", chart.to_str().unwrap(), "--strict"];
        args.extend_from_slice(values);
        let out = run_ok("helm", &args, None);
        assert!(
            out.contains("0 chart(s) failed"),
            "helm lint {values:?}:\n{out}"
        );
    }
}

#[test]
fn every_value_set_renders_valid_objects() {
    for values in VALUE_SETS {
        let docs = render(values);
        assert!(!docs.is_empty(), "{values:?} rendered nothing");
        for doc in &docs {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{values:?}: object without apiVersion/kind: {doc}"
            );
            assert!(
                doc["metadata"]["name"].is_string(),
                "{values:?}: object without a name: {doc}"
            );
        }
    }
}

fn namespaced_rules() -> Vec<(String, String, String, String)> {
    // The Role of namespaced mode holds exactly the "namespaced" rule group.
    let docs = render(&["--set", "watchNamespaces={team-a}"]);
    grants(&find(&docs, "Role", "eiam-eiam-operator", Some("team-a"))["rules"])
}

fn grant(group: &str, resource: &str, verb: &str) -> (String, String, String, String) {
    (group.into(), resource.into(), verb.into(), String::new())
}

/// What a secure `/metrics` (the default) needs: review each scraper's token and its right to `get` `/metrics`.
fn metrics_reviews() -> Vec<(String, String, String, String)> {
    vec![
        grant("authentication.k8s.io", "tokenreviews", "create"),
        grant("authorization.k8s.io", "subjectaccessreviews", "create"),
    ]
}

/// `get` on exactly the operator's own CRDs, by name: what the start-up CRD check reads.
fn crd_gets() -> Vec<(String, String, String, String)> {
    eiam_operator::api::crds::expected_schema_hashes()
        .into_iter()
        .map(|(name, _)| {
            (
                "apiextensions.k8s.io".to_owned(),
                "customresourcedefinitions".to_owned(),
                "get".to_owned(),
                name,
            )
        })
        .collect()
}

#[test]
fn cluster_mode_grants_the_namespaced_rules_cluster_wide_and_nothing_else_outside_the_release_namespace()
 {
    let docs = render(&[]);
    let cluster_role = grants(&find(&docs, "ClusterRole", "eiam-eiam-operator", None)["rules"]);
    let mut expected = namespaced_rules();
    expected.extend([
        grant("eiam-operator.io", "clustereiamproviders/status", "patch"),
        grant("eiam-operator.io", "clustereiamproviders", "get"),
        grant("eiam-operator.io", "clustereiamproviders", "list"),
        grant("eiam-operator.io", "clustereiamproviders", "watch"),
        grant("", "namespaces", "get"),
    ]);
    expected.extend(crd_gets());
    expected.extend(metrics_reviews());
    expected.sort();
    assert_eq!(cluster_role, expected);
    // With plain metrics, no reviews.
    let plain = render(&["--set", "metrics.secure=false"]);
    let plain_role = grants(&find(&plain, "ClusterRole", "eiam-eiam-operator", None)["rules"]);
    assert!(
        metrics_reviews()
            .iter()
            .all(|review| !plain_role.contains(review)),
        "{plain_role:?}"
    );
    // Who may scrape: the metrics-reader ClusterRole, and nothing else in it.
    let reader = find(
        &docs,
        "ClusterRole",
        "eiam-eiam-operator-metrics-reader",
        None,
    );
    assert_eq!(
        reader["rules"],
        serde_json::json!([{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }])
    );
    assert!(
        of_kind(&plain, "ClusterRole")
            .iter()
            .all(|role| role["metadata"]["name"] != "eiam-eiam-operator-metrics-reader")
    );

    // The only Role is the release namespace's, for the leader-election Lease.
    let roles = of_kind(&docs, "Role");
    assert_eq!(roles.len(), 1, "{roles:#?}");
    assert_eq!(roles[0]["metadata"]["namespace"], "eiam-system");
    let lease = grants(&roles[0]["rules"]);
    assert!(
        lease
            .iter()
            .all(|(g, r, _, _)| g == "coordination.k8s.io" && r == "leases"),
        "{lease:?}"
    );
    let binding = find(&docs, "ClusterRoleBinding", "eiam-eiam-operator", None);
    assert_eq!(binding["subjects"][0]["name"], "eiam-eiam-operator");
    assert_eq!(binding["subjects"][0]["namespace"], "eiam-system");
}

#[test]
fn restart_targets_are_an_opt_in_grant_of_exactly_the_three_workload_kinds() {
    let workloads = |rules: Vec<(String, String, String, String)>| {
        rules
            .into_iter()
            .filter(|(group, _, _, _)| group == "apps")
            .collect::<Vec<_>>()
    };
    let expected = vec![
        grant("apps", "daemonsets", "patch"),
        grant("apps", "deployments", "patch"),
        grant("apps", "statefulsets", "patch"),
    ];
    for (mode, extra) in [
        ("cluster", vec![]),
        ("namespaced", vec!["--set", "watchNamespaces={team-a}"]),
    ] {
        let (kind, namespace) = if extra.is_empty() {
            ("ClusterRole", None)
        } else {
            ("Role", Some("team-a"))
        };
        let off = render(&extra);
        assert!(
            workloads(grants(
                &find(&off, kind, "eiam-eiam-operator", namespace)["rules"]
            ))
            .is_empty(),
            "{mode}: off by default"
        );
        let mut on_args = extra.clone();
        on_args.extend(["--set", "rbac.restartTargets=true"]);
        let on = render(&on_args);
        assert_eq!(
            workloads(grants(
                &find(&on, kind, "eiam-eiam-operator", namespace)["rules"]
            )),
            expected,
            "{mode}: rbac.restartTargets=true"
        );
    }
}

#[test]
fn the_default_provider_serves_only_the_namespaces_and_applications_the_values_grant() {
    let deployment_env = |args: &[&str]| {
        let docs = render(args);
        env(find(&docs, "Deployment", "eiam-eiam-operator", None))
    };
    let defaults = deployment_env(&[]);
    for (key, value) in [
        ("EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOW_IMPORT", "false"),
        (
            "EIAM_OPERATOR_NAMESPACED_PROVIDERS_AMBIENT_CREDENTIALS",
            "false",
        ),
    ] {
        assert!(
            defaults.contains(&(key.into(), value.into())),
            "{defaults:?}"
        );
    }
    assert!(
        !defaults
            .iter()
            .any(|(k, _)| k.starts_with("EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_")),
        "no grant unless configured: {defaults:?}"
    );
    let granted = deployment_env(&[
        "--set",
        "operator.defaultProvider.allowedNamespaces={team-a,team-b}",
        "--set",
        "operator.defaultProvider.allowedApplications={idaas_1/app_team-*}",
        "--set",
        "operator.defaultProvider.allowImport=true",
        "--set",
        "operator.namespacedProvidersAmbientCredentials=true",
    ]);
    for (key, value) in [
        (
            "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_NAMESPACES",
            "team-a,team-b",
        ),
        (
            "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_APPLICATIONS",
            "idaas_1/app_team-*",
        ),
        ("EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOW_IMPORT", "true"),
        (
            "EIAM_OPERATOR_NAMESPACED_PROVIDERS_AMBIENT_CREDENTIALS",
            "true",
        ),
    ] {
        assert!(
            granted.contains(&(key.into(), value.into())),
            "{key}: {granted:?}"
        );
    }
}

#[test]
fn several_watched_namespaces_get_a_role_each_and_one_comma_separated_flag() {
    let docs = render(&["--set", "watchNamespaces={team-a,team-b}"]);
    let expected = namespaced_rules();
    for namespace in ["team-a", "team-b"] {
        let role = grants(&find(&docs, "Role", "eiam-eiam-operator", Some(namespace))["rules"]);
        assert_eq!(role, expected, "Role in {namespace}");
        let binding = find(&docs, "RoleBinding", "eiam-eiam-operator", Some(namespace));
        assert_eq!(binding["subjects"][0]["namespace"], "eiam-system");
    }
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    assert!(
        env(deployment).contains(&("EIAM_OPERATOR_NAMESPACE".into(), "team-a,team-b".into())),
        "{:?}",
        env(deployment)
    );
    // Nothing namespaced is granted cluster-wide.
    let cluster_role = grants(&find(&docs, "ClusterRole", "eiam-eiam-operator", None)["rules"]);
    assert!(
        cluster_role
            .iter()
            .all(|(_, resource, _, _)| resource != "secrets"),
        "{cluster_role:?}"
    );
}

#[test]
fn the_tenant_group_example_renders_a_role_per_namespace_and_its_cluster_provider() {
    let values = helm_support::repo().join("examples/helm/tenant-group.yaml");
    let docs = render(&["-f", values.to_str().expect("utf-8 path")]);
    for namespace in ["payments-api", "payments-batch"] {
        find(&docs, "Role", "eiam-eiam-operator", Some(namespace));
    }
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    assert!(
        env(deployment).contains(&(
            "EIAM_OPERATOR_NAMESPACE".into(),
            "payments-api,payments-batch".into()
        )),
        "{:?}",
        env(deployment)
    );
    let provider = find(&docs, "ClusterEiamProvider", "payments", None);
    assert_eq!(
        provider["spec"]["allowedNamespaces"]["names"],
        serde_json::json!(["payments-api", "payments-batch"])
    );
}

#[test]
fn namespaced_mode_keeps_secrets_and_workloads_out_of_the_cluster_role() {
    let docs = render(&["--set", "watchNamespaces={team-a}"]);
    let cluster_role = grants(&find(&docs, "ClusterRole", "eiam-eiam-operator", None)["rules"]);
    let mut expected = vec![
        grant("", "namespaces", "get"),
        grant("eiam-operator.io", "clustereiamproviders", "get"),
        grant("eiam-operator.io", "clustereiamproviders", "list"),
        grant("eiam-operator.io", "clustereiamproviders", "watch"),
    ];
    expected.extend(crd_gets());
    expected.extend(metrics_reviews());
    expected.sort();
    assert_eq!(cluster_role, expected);
    let role = namespaced_rules();
    for needed in [
        grant("", "secrets", "create"),
        grant("", "secrets", "patch"),
        grant("", "secrets", "delete"),
        grant(
            "eiam-operator.io",
            "applicationclientsecrets/status",
            "patch",
        ),
        grant("events.k8s.io", "events", "create"),
        grant("eiam-operator.io", "eiamproviders/status", "patch"),
    ] {
        assert!(role.contains(&needed), "Role lacks {needed:?}: {role:?}");
    }
    assert!(
        role.iter().all(|(group, _, _, _)| group != "apps"),
        "no workload may be patched without rbac.restartTargets: {role:?}"
    );
    let binding = find(&docs, "RoleBinding", "eiam-eiam-operator", Some("team-a"));
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["namespace"], "eiam-system");
    // The release namespace's Role adds Secret get (ClusterEiamProvider AccessKeys kept there) to the Lease.
    let own = grants(
        &find(
            &docs,
            "Role",
            "eiam-eiam-operator-self",
            Some("eiam-system"),
        )["rules"],
    );
    assert!(own.contains(&grant("", "secrets", "get")), "{own:?}");
    assert!(!own.contains(&grant("", "secrets", "list")), "{own:?}");
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    assert!(
        env(deployment).contains(&("EIAM_OPERATOR_NAMESPACE".into(), "team-a".into())),
        "{:?}",
        env(deployment)
    );
}

#[test]
fn lease_rules_name_the_lease_except_for_create() {
    let docs = render(&["--set", "leaderElection.leaseName=my-lease"]);
    let role = grants(
        &find(
            &docs,
            "Role",
            "eiam-eiam-operator-self",
            Some("eiam-system"),
        )["rules"],
    );
    for (_, _, verb, name) in &role {
        if verb == "create" {
            assert_eq!(name, "", "create cannot be restricted by name");
        } else {
            assert_eq!(name, "my-lease", "{verb} must be limited to the lease");
        }
    }
    // The operator is told the same Lease name the Role allows.
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    let vars = env(deployment);
    assert!(vars.contains(&("EIAM_OPERATOR_LEADER_ELECTION".into(), "true".into())));
    assert!(vars.contains(&(
        "EIAM_OPERATOR_LEADER_ELECTION_LEASE_NAME".into(),
        "my-lease".into()
    )));
    let without = render(&[
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicaCount=1",
    ]);
    assert!(of_kind(&without, "Role").is_empty());
    let deployment = find(&without, "Deployment", "eiam-eiam-operator", None);
    assert!(env(deployment).contains(&("EIAM_OPERATOR_LEADER_ELECTION".into(), "false".into())));
    assert!(of_kind(&without, "PodDisruptionBudget").is_empty());
}

fn env(deployment: &Value) -> Vec<(String, String)> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["value"].as_str().unwrap_or("<from>").to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_pod_meets_the_restricted_pod_security_standard_and_probes_health() {
    let docs = render(&[]);
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        container["image"],
        format!(
            "ghcr.io/eiam-operator/eiam-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let pdb = find(&docs, "PodDisruptionBudget", "eiam-eiam-operator", None);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn cloud_credentials_modes_render_the_alibaba_cloud_environment() {
    // ack-pod-identity-webhook mode: the role on the ServiceAccount, nothing injected by the chart.
    let docs = render(&[
        "--set",
        "cloudCredentials.mode=rrsa",
        "--set",
        "cloudCredentials.rrsa.roleName=eiam-operator",
    ]);
    let sa = find(&docs, "ServiceAccount", "eiam-eiam-operator", None);
    assert_eq!(
        sa["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"],
        "eiam-operator"
    );
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    assert!(
        !env(deployment)
            .iter()
            .any(|(k, _)| k == "ALIBABA_CLOUD_ROLE_ARN")
    );

    // Manual RRSA: the three variables and a projected token where the operator's default looks for it.
    let docs = render(VALUE_SETS[3]);
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    let vars = env(deployment);
    for expected in [
        (
            "ALIBABA_CLOUD_ROLE_ARN",
            "acs:ram::1234567890123456:role/eiam-operator",
        ),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1",
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            eiam_operator::api::provider::DEFAULT_RRSA_TOKEN_FILE,
        ),
        ("ALIBABA_CLOUD_STS_REGION", "cn-hangzhou"),
        ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true"),
    ] {
        assert!(
            vars.contains(&(expected.0.into(), expected.1.into())),
            "missing {expected:?} in {vars:?}"
        );
    }
    let pod = &deployment["spec"]["template"]["spec"];
    let projected = &pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(projected["audience"], "sts.aliyuncs.com");
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    assert_eq!(
        format!("{mount}/{}", projected["path"].as_str().unwrap()),
        eiam_operator::api::provider::DEFAULT_RRSA_TOKEN_FILE
    );

    // AccessKey Secret: secretKeyRefs, never values.
    let docs = render(VALUE_SETS[4]);
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let refs: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("ALIBABA_CLOUD_"))
        .map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(r["name"], "eiam-ak", "{e}");
            (
                e["name"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            ("ALIBABA_CLOUD_ACCESS_KEY_ID".into(), "accessKeyId".into()),
            (
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET".into(),
                "accessKeySecret".into()
            ),
            ("ALIBABA_CLOUD_SECURITY_TOKEN".into(), "token".into()),
        ]
    );
}

#[test]
fn optional_objects_appear_only_when_enabled() {
    let plain = render(&[]);
    for kind in [
        "Service",
        "ServiceMonitor",
        "NetworkPolicy",
        "ClusterEiamProvider",
    ] {
        assert!(
            of_kind(&plain, kind).is_empty(),
            "{kind} rendered by default"
        );
    }
    let all = render(VALUE_SETS[2]);
    let monitor = find(&all, "ServiceMonitor", "eiam-eiam-operator", None);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let service = find(&all, "Service", "eiam-eiam-operator-metrics", None);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    let policy = find(&all, "NetworkPolicy", "eiam-eiam-operator", None);
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let provider = find(&all, "ClusterEiamProvider", "default", None);
    assert_eq!(provider["spec"]["region"], "cn-hangzhou");
    assert_eq!(
        find(&all, "Deployment", "eiam-eiam-operator", None)["spec"]["replicas"],
        3
    );
}

#[test]
fn the_grafana_dashboard_is_a_configmap_for_the_sidecar_that_works_with_any_datasource() {
    assert!(
        of_kind(&render(&[]), "ConfigMap").is_empty(),
        "the dashboard is opt-in"
    );
    let docs = render(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.extraLabels.team=platform",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Security",
    ]);
    let map = find(&docs, "ConfigMap", "eiam-eiam-operator-dashboard", None);
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["labels"]["team"], "platform");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Security");
    let text = map["data"]["eiam-operator.json"]
        .as_str()
        .expect("the dashboard JSON");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/eiam-operator/dashboards/eiam-operator.json"
    ))
    .expect("the dashboard file");
    assert_eq!(
        text.trim_end(),
        shipped.trim_end(),
        "the ConfigMap carries the file as it is"
    );
    let dashboard: Value = serde_json::from_str(text).expect("the dashboard is JSON");
    // Any data source name: every query names the `datasource` variable, which Grafana asks for on import.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(variables.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().expect("an expr");
            queries += 1;
            // Rates over Grafana's own interval: never a fixed window that breaks at another scrape interval.
            for function in ["rate(", "increase("] {
                for (at, _) in expr.match_indices(function) {
                    let window = &expr[at..];
                    let close = window.find(')').unwrap_or(window.len());
                    assert!(
                        window[..close].contains("[$__rate_interval]")
                            || window[..close].contains("[$__range]"),
                        "{title}: {expr}"
                    );
                }
            }
        }
    }
    assert!(queries >= 15, "{queries} queries");
    for wanted in [
        "Secrets closest to expiry",
        "Renewals",
        "Retirements",
        "EIAM calls by action and outcome",
        "Throttling and budget waits",
        "Reconcile results",
        "Reconcile latency",
        "Reconciles in flight",
        "Leader",
        "CRD schema current",
    ] {
        assert!(
            panels.iter().any(|p| p["title"] == wanted),
            "no panel {wanted:?}"
        );
    }
    // The ServiceMonitor keeps the resources' own `namespace` label.
    let monitored = render(&["--set", "metrics.serviceMonitor.enabled=true"]);
    let monitor = find(&monitored, "ServiceMonitor", "eiam-eiam-operator", None);
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
}

#[test]
fn the_service_monitor_scrapes_over_https_with_prometheus_token() {
    let endpoint = |values: &[&str]| {
        let mut args = vec!["--set", "metrics.serviceMonitor.enabled=true"];
        args.extend_from_slice(values);
        let docs = render(&args);
        find(&docs, "ServiceMonitor", "eiam-eiam-operator", None)["spec"]["endpoints"][0].clone()
    };
    // The default: the operator's self-signed certificate, the scraper's ServiceAccount token.
    let default = endpoint(&[]);
    assert_eq!(default["scheme"], "https");
    assert_eq!(
        default["bearerTokenFile"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    );
    assert_eq!(default["tlsConfig"]["insecureSkipVerify"], true);
    // A certificate from a Secret (cert-manager): verified against its CA, for the Service's name.
    let verified = endpoint(&["--set", "metrics.certSecret=metrics-tls"]);
    assert_eq!(verified["tlsConfig"]["ca"]["secret"]["name"], "metrics-tls");
    assert_eq!(
        verified["tlsConfig"]["serverName"],
        "eiam-eiam-operator-metrics.eiam-system.svc"
    );
    assert!(verified["tlsConfig"]["insecureSkipVerify"].is_null());
    let docs = render(&["--set", "metrics.certSecret=metrics-tls"]);
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    assert!(
        env(deployment).contains(&(
            "EIAM_OPERATOR_METRICS_CERT_DIR".to_owned(),
            "/etc/eiam-operator/metrics-certs".to_owned()
        )),
        "{deployment:#}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "metrics-tls"
    );
    // Plain, by explicit choice: no HTTPS, no token.
    let plain = endpoint(&["--set", "metrics.secure=false"]);
    assert!(
        plain["scheme"].is_null() && plain["bearerTokenFile"].is_null(),
        "{plain:#}"
    );
}

#[test]
fn the_values_schema_rejects_bad_values_and_names_them() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=0"], "replicaCount"),
        (&["--set", "watchNamespaces={a,a}"], "watchNamespaces"),
        (
            &["--set", "watchNamespaces={Not_A_Namespace}"],
            "watchNamespaces",
        ),
        (
            &["--set", "cloudCredentials.mode=password"],
            "cloudCredentials",
        ),
        (
            &["--set", "operator.resyncInterval=hourly"],
            "resyncInterval",
        ),
        (&["--set", "operator.logFormat=xml"], "logFormat"),
        (
            &["--set", "operator.defaultProvider.signatureVersion=v2"],
            "signatureVersion",
        ),
        (&["--set", "image.digest=latest"], "digest"),
        (&["--set", "replicaCuont=3"], "replicaCuont"),
        (&["--set", "metrics.port=80000"], "port"),
        (
            &["--set", "clusterEiamProvider.spec.signatureVersion=v9"],
            "signatureVersion",
        ),
        (&["--set", "clusterEiamProvider.spec.colour=blue"], "colour"),
    ];
    for (values, field) in cases {
        let stderr = render_err(values);
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "{values:?} failed for another reason: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "{values:?}: error does not name {field}: {stderr}"
        );
    }
}

#[test]
fn templates_refuse_inconsistent_values_with_a_message_that_says_what_to_do() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "leaderElection.enabled=false"],
            "replicaCount > 1 needs leaderElection.enabled",
        ),
        (
            &["--set", "cloudCredentials.mode=rrsa"],
            "cloudCredentials.rrsa.roleName is required",
        ),
        (
            &[
                "--set",
                "cloudCredentials.mode=rrsa",
                "--set",
                "cloudCredentials.rrsa.manual=true",
            ],
            "cloudCredentials.rrsa.roleArn is required",
        ),
        (
            &["--set", "cloudCredentials.mode=accessKeySecret"],
            "cloudCredentials.accessKeySecret.name is required",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name is required",
        ),
    ];
    for (values, message) in cases {
        let stderr = render_err(values);
        assert!(
            stderr.contains(message),
            "{values:?}: expected {message:?} in {stderr}"
        );
    }
}

#[test]
fn chart_crds_are_byte_identical_to_crds() {
    let repo = helm_support::repo();
    let names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let generated = names(&repo.join("crds"));
    assert_eq!(
        generated,
        names(&chart().join("files/crds")),
        "run `make chart-crds`"
    );
    for name in generated {
        assert!(
            std::fs::read(repo.join("crds").join(&name)).unwrap()
                == std::fs::read(chart().join("files/crds").join(&name)).unwrap(),
            "charts/eiam-operator/files/crds/{name} differs from crds/{name}: run `make chart-crds`"
        );
    }
    // Helm would install a crds/ directory once and never upgrade it: the chart must not have one.
    assert!(
        !chart().join("crds").exists(),
        "charts/eiam-operator/crds/ is back"
    );
}

/// The CRDs of `crds/`, parsed, by name.
fn generated_crds() -> Vec<(String, Value)> {
    let repo = helm_support::repo();
    let mut crds: Vec<(String, Value)> = std::fs::read_dir(repo.join("crds"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let crd: Value = serde_yaml::from_str(&text).unwrap();
            (crd["metadata"]["name"].as_str().unwrap().to_owned(), crd)
        })
        .collect();
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds
}

/// Every number as an f64: Helm's YAML round trip writes `1000.0` as `1000`, the same JSON number to the API server.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn the_chart_renders_the_generated_crds_as_templates_kept_on_uninstall() {
    let generated = generated_crds();
    assert_eq!(generated.len(), 3);
    for (values, keep) in [
        (&[][..], true),
        (&["--set", "crds.keep=false"][..], false),
        (&["--set", "watchNamespaces={team-a}"][..], true),
    ] {
        let docs = render(values);
        let rendered = of_kind(&docs, "CustomResourceDefinition");
        assert_eq!(rendered.len(), generated.len(), "{values:?}");
        for (name, crd) in &generated {
            let mut crd_rendered = find(&docs, "CustomResourceDefinition", name, None).clone();
            let metadata = crd_rendered["metadata"].as_object_mut().unwrap();
            let labels = metadata.remove("labels").expect("the chart's labels");
            assert_eq!(labels["app.kubernetes.io/instance"], "eiam", "{labels}");
            let annotations = metadata["annotations"].as_object_mut().unwrap();
            let policy = annotations.remove("helm.sh/resource-policy");
            assert_eq!(
                policy.as_ref().and_then(Value::as_str),
                keep.then_some("keep"),
                "{values:?}: {name}"
            );
            // Everything else — the schema hash the operator checks included — is crds/ as generated.
            assert_eq!(
                numbers_as_floats(crd_rendered),
                numbers_as_floats(crd.clone()),
                "{values:?}: {name} differs from crds/"
            );
            assert!(
                crd["metadata"]["annotations"]["eiam-operator.io/schema-hash"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("sha256:")),
                "{name}"
            );
        }
    }
    let docs = render(&["--set", "crds.enabled=false"]);
    assert!(of_kind(&docs, "CustomResourceDefinition").is_empty());
    assert!(
        !of_kind(&docs, "ClusterRole").is_empty(),
        "only the CRDs are left out"
    );
}

#[test]
fn every_operator_setting_the_chart_renders_is_a_flag_the_binary_knows() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_eiam-operator"))
        .arg("--help")
        .output()
        .expect("run eiam-operator --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for values in VALUE_SETS {
        let docs = render(values);
        let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
        for (name, _) in env(deployment) {
            if name.starts_with("EIAM_OPERATOR_") {
                assert!(
                    help.contains(&format!("[env: {name}=")),
                    "the chart sets {name}, which `eiam-operator --help` does not list"
                );
            }
        }
    }
}

#[test]
fn chart_version_matches_the_crate() {
    let chart_yaml: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart_yaml["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_values_schema_is_what_its_generator_writes() {
    let repo = helm_support::repo();
    let output = std::process::Command::new("python3")
        .arg(repo.join("hack/gen-values-schema.py"))
        .output()
        .expect("run python3 hack/gen-values-schema.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read(chart().join("values.schema.json")).unwrap();
    assert!(
        output.stdout == committed,
        "charts/eiam-operator/values.schema.json is stale: run \
         hack/gen-values-schema.py > charts/eiam-operator/values.schema.json"
    );
}

#[test]
fn the_kubectl_install_manifest_is_the_chart_rendered_with_its_defaults() {
    let repo = helm_support::repo();
    let output = std::process::Command::new(repo.join("hack/helm-manifests.sh"))
        .env("HELM", helm_support::tool("helm"))
        .output()
        .expect("run hack/helm-manifests.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read(repo.join("deploy/eiam-operator.yaml")).unwrap();
    assert!(
        output.stdout == committed,
        "deploy/eiam-operator.yaml is stale: run `make manifests`"
    );
    let docs = helm_support::parse_documents(&String::from_utf8(committed).unwrap());
    assert_eq!(of_kind(&docs, "CustomResourceDefinition").len(), 3);
    assert_eq!(docs[0]["kind"], "Namespace");
}

#[test]
fn the_dockerfile_builds_with_make_image_rootfs_and_runs_as_the_charts_user() {
    let repo = helm_support::repo();
    let dockerfile = std::fs::read_to_string(repo.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("make image-rootfs"),
        "the Rust build and the root filesystem are `make image-rootfs`, as for `make image`"
    );
    let makefile = std::fs::read_to_string(repo.join("Makefile")).unwrap();
    assert!(makefile.contains("image-rootfs: image-binary"));
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "multi-stage: {stages:?}");
    assert_eq!(stages[1], "FROM scratch", "{stages:?}");
    let docs = render(&[]);
    let deployment = find(&docs, "Deployment", "eiam-eiam-operator", None);
    let pod = &deployment["spec"]["template"]["spec"];
    let user = pod["securityContext"]["runAsUser"].as_i64().unwrap();
    assert!(
        dockerfile.contains(&format!("USER {user}:{user}")),
        "the image runs as the chart's user {user}"
    );
    let image = pod["containers"][0]["image"].as_str().unwrap();
    assert!(
        dockerfile.contains(image),
        "the Dockerfile's build command tags the chart's default image {image}"
    );
    let ports: Vec<String> = pod["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].to_string())
        .collect();
    assert!(
        dockerfile.contains(&format!("EXPOSE {}", ports.join(" "))),
        "{ports:?}"
    );
    let license = std::fs::read_to_string(repo.join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    assert!(
        std::fs::read_to_string(repo.join("Cargo.toml"))
            .unwrap()
            .contains("license = \"Apache-2.0\"")
    );
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    assert!(chart_yaml.contains("artifacthub.io/license: Apache-2.0"));
}
