//! `/metrics` on a real scrape: it passes `promtool check metrics`, carries every metric README lists with the
//! values the run produced, speaks OpenMetrics when asked, and drops a deleted resource's series.

use std::process::{Command, Stdio};
use std::time::Duration;

use eiam_operator::api::ApplicationClientSecret;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use crate::common::{control_plane, wait_until};
use crate::support::{OperatorSpec, create_resource, fake, promtool, sample, wait_ready};

/// Every metric family README "Metrics" documents, with its Prometheus type: the rows of its table.
fn documented() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Metrics section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.next()?;
            Some((name.to_owned(), kind.to_owned()))
        })
        .collect();
    assert!(rows.len() >= 15, "README Metrics lists only {rows:?}");
    rows
}

const CREATE: &str = "CreateApplicationClientSecret";

/// Every PromQL query of the chart's Grafana dashboard (panels and template variables), by where it is.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/eiam-operator/dashboards/eiam-operator.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            queries.push((format!("panel {:?}", panel["title"]), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            // label_values(METRIC, LABEL) is Grafana's, not PromQL: its metric must exist all the same.
            let metric = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split(',').next())
                .expect("a label_values query");
            queries.push((
                format!("variable {:?}", variable["name"]),
                metric.to_owned(),
            ));
        }
    }
    queries
}

/// The dashboard cannot rot: every query parses as PromQL (`promtool check rules` on a rule file made of them,
/// with Grafana's variables given values) and names only metrics a running operator exports.
fn dashboard_queries_parse_and_name_only_exported_metrics(scrape: &str) {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, (place, expr)) in queries.iter().enumerate() {
        let concrete = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$namespace", ".*");
        assert!(
            !concrete.contains('$'),
            "{place}: an unknown variable in {expr}"
        );
        rules.push_str(&format!(
            "      - record: dashboard:query_{index}\n        expr: {}\n",
            serde_json::to_string(&concrete).expect("a YAML string")
        ));
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("eiam_operator_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                scrape
                    .lines()
                    .any(|line| line.starts_with(&name)
                        && line[name.len()..].starts_with(['{', ' '])),
                "{place}: {name} is not exported by a running operator"
            );
            rest = &rest[at + name.len()..];
        }
    }
    let dir = std::env::temp_dir().join(format!("eiam-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("dashboard-rules.yaml");
    std::fs::write(&file, &rules).expect("write the rule file");
    let output = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool check rules on the dashboard's queries:\n{}{}\n{rules}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "dashboard: {} queries parse (promtool) and name only exported metrics",
        queries.len()
    );
}

/// Runs `promtool check metrics` on `scrape`; returns its output, panicking when it finds a problem.
fn promtool_check_metrics(scrape: &str) -> String {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin.write_all(scrape.as_bytes()).expect("feed promtool");
    }
    let output = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{text}\n--- scrape ---\n{scrape}",
        output.status
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_passes_promtool_and_carries_every_documented_metric() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-metrics").await;
    let client = cp.client().await;
    // The first Create is throttled, so the error path shows up too: its code as outcome, throttled, a retry.
    let fake = fake(json!([{
        "kind": "throttle", "code": "Throttling.User", "retryAfterMs": 100, "action": CREATE, "next": 1
    }]))
    .await;
    let operator = OperatorSpec::new(cp, ns.name(), &fake.url())
        .arg("--leader-election=false")
        .start()
        .await;

    create_resource(&client, ns.name(), "web").await;
    let resource = wait_ready(&client, ns.name(), "web", Duration::from_secs(60)).await;
    let status = resource.status.expect("status");

    let text = operator.scrape().await;
    let promtool_says = promtool_check_metrics(&text);
    println!(
        "promtool check metrics: ok on a real scrape of {} lines{}",
        text.lines().count(),
        if promtool_says.trim().is_empty() {
            String::new()
        } else {
            format!(" ({})", promtool_says.trim())
        }
    );

    for (family, kind) in documented() {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} ({kind}) missing from the scrape:\n{text}"
        );
    }
    let value = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    };
    let web = "namespace=\"".to_owned() + ns.name() + "\",name=\"web\"";
    assert!(value("eiam_operator_reconciles_total{result=\"success\"}") >= 1.0);
    // The throttled Create is retried in place (after x-acs-retry-after), so no reconcile failed.
    assert_eq!(
        sample(
            &text,
            "eiam_operator_reconciles_total{result=\"eiam_error\"}"
        )
        .unwrap_or(0.0),
        0.0
    );
    assert_eq!(value("eiam_operator_reconciles_in_flight"), 0.0);
    assert_eq!(
        value(&format!(
            "eiam_operator_eiam_calls_total{{action=\"{CREATE}\",outcome=\"ok\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_eiam_calls_total{{action=\"{CREATE}\",outcome=\"Throttling.User\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_eiam_throttled_total{{action=\"{CREATE}\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_eiam_retries_total{{action=\"{CREATE}\",reason=\"backoff\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_eiam_call_duration_seconds_count{{action=\"{CREATE}\"}}"
        )),
        2.0
    );
    assert_eq!(value("eiam_operator_leader"), 1.0);
    // The kube client's requests: the status patch and the watches opened, all answered.
    assert!(value("eiam_operator_kube_requests_total{method=\"PATCH\",code=\"200\"}") >= 1.0);
    assert!(value("eiam_operator_kube_requests_total{method=\"WATCH\",code=\"200\"}") >= 1.0);
    assert_eq!(
        value(&format!(
            "eiam_operator_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    let not_after = status.not_after.expect("notAfter").0.as_second() as f64;
    let renewal = status.renewal_time.expect("renewalTime").0.as_second() as f64;
    assert_eq!(
        value(&format!(
            "eiam_operator_secret_expiration_timestamp_seconds{{{web}}}"
        )),
        not_after
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_secret_renewal_timestamp_seconds{{{web}}}"
        )),
        renewal
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_ready_status{{{web},condition=\"True\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_ready_status{{{web},condition=\"False\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "eiam_operator_stalled_status{{{web},condition=\"False\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!("eiam_operator_rotations_total{{{web}}}")),
        0.0
    );
    let secret_id = status.current_secret_id.expect("current secret");
    assert!(
        !text.contains(&secret_id),
        "a secret id leaked into the metrics"
    );

    dashboard_queries_parse_and_name_only_exported_metrics(&text);

    // Prometheus asks for OpenMetrics first and gets it.
    let (content_type, open) = operator
        .scrape_as(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ))
        .await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        open.contains("# TYPE eiam_operator_reconciles counter\n"),
        "{open}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");

    // Deleting the resource removes its series (once the finalizer is gone and the cache forgets it).
    Api::<ApplicationClientSecret>::namespaced(client.clone(), ns.name())
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete the resource");
    wait_until(
        "the deleted resource's series to disappear",
        Duration::from_secs(60),
        || async {
            let text = operator.scrape().await;
            (!text.contains(&web)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_alive_and_ready_once_the_watches_have_synced() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-probes").await;
    let fake = fake(json!([])).await;
    let operator = OperatorSpec::new(cp, ns.name(), &fake.url()).start().await;

    assert_eq!(operator.probe("/healthz").await, (200, "ok\n".to_owned()));
    // Standing by for the Lease is ready too (a standby can take over), and it comes first: wait for leading.
    let ready = wait_until(
        "/readyz to answer 200 leading",
        Duration::from_secs(30),
        || async {
            let (status, body) = operator.probe("/readyz").await;
            assert!(
                status != 200 || body == "leading\n" || body == "standing by\n",
                "ready in another phase: {body}"
            );
            (status == 200 && body == "leading\n").then_some(body)
        },
    )
    .await;
    let observed_ready = jiff::Timestamp::now();
    assert_eq!(ready, "leading\n");
    // The operator logs "watches synced" before it turns ready; the harness reads its stderr on another thread,
    // so the line may reach us a moment after the 200. Its own timestamp must precede the 200 we saw.
    let synced = wait_until(
        "the watches-synced log line",
        Duration::from_secs(5),
        || async {
            operator
                .records_with("watches synced: reconciling")
                .into_iter()
                .next()
        },
    )
    .await;
    let synced_at: jiff::Timestamp = synced["timestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp in {synced}"));
    assert!(
        synced_at <= observed_ready,
        "ready at {observed_ready} before the watches synced at {synced_at}:\n{}",
        operator.process.output()
    );
}

/// A token for `namespace/name` from the TokenRequest API (what the kubelet mounts into a pod).
async fn service_account_token(client: &kube::Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } }))
                .expect("a ServiceAccount"),
        )
        .await
        .expect("create the ServiceAccount");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(name, &kube::api::PostParams::default(), &request)
        .await
        .expect("a TokenRequest")
        .status
        .expect("its status")
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_scrape_needs_a_token_whose_user_may_get_metrics() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let cp = control_plane().await;
    let ns = cp.namespace("ops-metrics-auth").await;
    let client = cp.client().await;
    let fake = fake(json!([])).await;
    // Not loopback: HTTPS, and every scrape reviewed (the default --metrics-secure).
    let operator = OperatorSpec::new(cp, ns.name(), &fake.url())
        .metrics_on("0.0.0.0:0")
        .arg("--leader-election=false")
        .start()
        .await;
    assert!(
        operator.metrics.starts_with("https://"),
        "{}",
        operator.metrics
    );
    let url = format!("{}/metrics", operator.metrics);
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .expect("an HTTP client");
    let scrape = |token: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut request = http.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("GET /metrics over HTTPS");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    // Plain HTTP on the HTTPS port is no way in either.
    let plain = reqwest::get(url.replacen("https://", "http://", 1)).await;
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true));

    let (status, body) = scrape(None).await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, _) = scrape(Some("not-a-token".to_owned())).await;
    assert_eq!(status, 401, "a token the API server does not know");

    let stranger = service_account_token(&client, ns.name(), "stranger").await;
    let (status, body) = scrape(Some(stranger.clone())).await;
    assert_eq!(status, 403, "a known token without the RBAC: {body}");
    assert!(!body.contains("eiam_operator_"), "{body}");

    // What the chart's metrics-reader ClusterRole grants, bound to the scraper's ServiceAccount.
    let reader = format!("{}-metrics-reader", ns.name());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": reader },
        "rules": [{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }]
    }))
    .expect("a ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": reader },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader },
        "subjects": [{ "kind": "ServiceAccount", "name": "prometheus", "namespace": ns.name() }]
    }))
    .expect("a ClusterRoleBinding");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    roles
        .create(&kube::api::PostParams::default(), &role)
        .await
        .expect("create the reader ClusterRole");
    bindings
        .create(&kube::api::PostParams::default(), &binding)
        .await
        .expect("bind it");
    let prometheus = service_account_token(&client, ns.name(), "prometheus").await;
    let (status, body) = wait_until(
        "the bound scraper reads /metrics",
        Duration::from_secs(30),
        || {
            let scraped = scrape(Some(prometheus.clone()));
            async move {
                let (status, body) = scraped.await;
                (status == 200).then_some((status, body))
            }
        },
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("eiam_operator_build_info"), "{body}");

    // Answers are cached per token: ten more scrapes cost the API server no review.
    let reviews = |text: &str| {
        sample(
            text,
            "eiam_operator_kube_requests_total{method=\"POST\",code=\"201\"}",
        )
        .unwrap_or(0.0)
    };
    let before = reviews(&body);
    let mut last = body;
    for _ in 0..10 {
        let (status, text) = scrape(Some(prometheus.clone())).await;
        assert_eq!(status, 200);
        last = text;
    }
    assert_eq!(
        reviews(&last),
        before,
        "a cached answer asks the API server nothing"
    );

    let _ = bindings.delete(&reader, &DeleteParams::default()).await;
    let _ = roles.delete(&reader, &DeleteParams::default()).await;
}
