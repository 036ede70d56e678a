//! The container image as a cluster runs it: `make image`'s `localhost/eiam-operator:dev` under podman, with the
//! Helm chart's securityContext (read-only root filesystem and no tmpfs, user 65532, every capability dropped, no
//! new privileges) and the chart's environment, against the test control plane and a fake EIAM served over HTTPS
//! under a host name (`--add-host`) with a private CA that the provider trusts through `spec.caBundle`. A resource
//! becomes Ready, `/readyz` and `/metrics` answer, and SIGTERM ends the container with status 0. The image's size
//! and its start-to-ready time are printed (README "Container image").
//!
//! Podman is not optional here: `make test` installs it (`make podman`) and builds the image (`make image`) before
//! the tests run, so a missing podman or image fails the test with the command that provides it.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

mod common;
mod helm_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use eiam_operator::api::{ApplicationClientSecret, EiamProvider};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use serde_json::{Value, json};

use common::tls::test_pki;
use common::{ProcessSpec, control_plane, free_port, wait_until};

/// What `make image` tags.
const IMAGE: &str = "localhost/eiam-operator:dev";
/// The host name the fake EIAM is reached by, inside the container (`--add-host`) and in its certificate.
const EIAM_HOST: &str = "eiam.image-test.internal";
const INSTANCE: &str = "idaas_image";
const APPLICATION: &str = "app_image";
const ACCESS_KEY_ID: &str = "LTAIimageTest";
const ACCESS_KEY_SECRET: &str = "image-test-access-key-secret";

/// Podman as Debian ships it works here as root with runc (crun fails on this machine's hybrid cgroup layout) and
/// cgroupfs.
fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    command
}

fn podman_output(args: &[&str]) -> Output {
    podman().args(args).output().unwrap_or_else(|e| {
        panic!(
            "podman is not installed ({e}): `make podman` installs Debian's podman and runc (`make test` does), \
             then `make image` builds {IMAGE}"
        )
    })
}

fn podman_ok(args: &[&str]) -> String {
    let output = podman_output(args);
    assert!(
        output.status.success(),
        "podman {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Fails unless podman runs and holds the image, saying which command provides what is missing.
fn require_image() {
    let exists = podman_output(&["image", "exists", IMAGE]);
    assert!(
        exists.status.success(),
        "{IMAGE} is not in podman's storage: run `make image` (`make test` does)"
    );
}

/// Removes the container however the test ends.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "0", &self.0])
            .output();
    }
}

/// The podman flags for the chart's pod and container securityContext. Every field is translated or the test
/// fails: a field added to the chart must be added here, so the test keeps running the image as the chart does.
fn security_flags(pod: &Value, container: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    let mut user = (None, None);
    for (scope, context) in [("pod", pod), ("container", container)] {
        for (key, value) in context.as_object().into_iter().flatten() {
            match (key.as_str(), value) {
                ("runAsUser", Value::Number(uid)) => user.0 = Some(uid.to_string()),
                ("runAsGroup", Value::Number(gid)) => user.1 = Some(gid.to_string()),
                // The kubelet refuses to start a container whose user is root; the image's USER and the flags
                // above decide it, checked below.
                ("runAsNonRoot", Value::Bool(true)) => {}
                // Ownership of mounted volumes: the container mounts none but the kubeconfig.
                ("fsGroup", Value::Number(_)) => {}
                // Podman's default seccomp profile is its RuntimeDefault.
                ("seccompProfile", profile) if profile["type"] == "RuntimeDefault" => {}
                ("readOnlyRootFilesystem", Value::Bool(true)) => {
                    // Kubernetes mounts no tmpfs on a read-only root; podman does unless told not to.
                    flags.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
                }
                ("allowPrivilegeEscalation", Value::Bool(false)) => {
                    flags.extend(["--security-opt".into(), "no-new-privileges".into()]);
                }
                ("capabilities", caps)
                    if caps["drop"] == json!(["ALL"]) && caps.get("add").is_none() =>
                {
                    flags.extend(["--cap-drop".into(), "all".into()]);
                }
                _ => panic!(
                    "the chart's {scope} securityContext sets {key}: {value}, which this test does not translate \
                     to podman yet: add it to security_flags"
                ),
            }
        }
    }
    let uid = user.0.expect("the chart sets runAsUser");
    assert_ne!(uid, "0", "runAsNonRoot with runAsUser 0");
    let gid = user.1.unwrap_or_else(|| uid.clone());
    flags.extend(["--user".into(), format!("{uid}:{gid}")]);
    flags
}

/// A copy of `kubeconfig` owned by the pod's user (`runAsUser`/`fsGroup`), mode 0400: what the kubelet does for
/// a projected ServiceAccount token.
fn readable_by_the_chart_user(kubeconfig: &Path, dir: &Path, pod: &Value) -> std::path::PathBuf {
    let context = &pod["securityContext"];
    let uid = context["runAsUser"].as_u64().expect("runAsUser") as u32;
    let gid = context["fsGroup"].as_u64().map(|g| g as u32);
    let copy = dir.join("kubeconfig");
    std::fs::copy(kubeconfig, &copy).expect("copy the kubeconfig");
    std::os::unix::fs::chown(&copy, Some(uid), gid)
        .expect("chown the kubeconfig copy (podman runs as root here, and so do these tests)");
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o400))
        .expect("chmod the kubeconfig copy");
    copy
}

/// This process's limit `resource`, as podman's `SOFT:HARD`.
fn own_limit(resource: libc::__rlimit_resource_t) -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    let result = unsafe { libc::getrlimit(resource, &mut limit) };
    assert_eq!(result, 0, "getrlimit: {}", std::io::Error::last_os_error());
    format!("{}:{}", limit.rlim_cur, limit.rlim_max)
}

/// The chart's Deployment, rendered for one watched namespace.
fn chart_container(namespace: &str) -> (Value, Value) {
    let watch = format!("watchNamespaces={{{namespace}}}");
    let docs = helm_support::render(&["--set", &watch]);
    let deployments = helm_support::of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1, "the chart renders one Deployment");
    let pod = deployments[0]["spec"]["template"]["spec"].clone();
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    let container = containers[0].clone();
    (pod, container)
}

async fn get_status(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn the_image_runs_as_the_chart_runs_it_against_https_eiam_by_host_name() {
    require_image();
    let cp = control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("image").await;

    // The fake EIAM over HTTPS, with a certificate for EIAM_HOST from a CA nobody trusts by default.
    let pki = test_pki(&[EIAM_HOST]);
    let mut fake = ProcessSpec::new("fake-eiam", env!("CARGO_BIN_EXE_fake-eiam"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert")
        .arg(&pki.server_cert)
        .arg("--tls-key")
        .arg(&pki.server_key)
        .arg("--access-key")
        .arg(format!("{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}"))
        .arg("--application")
        .arg(format!("{INSTANCE}/{APPLICATION}"))
        .spawn();
    let line = fake
        .wait_for_line("fake-eiam listening on https://", Duration::from_secs(30))
        .await;
    let fake_port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|port| port.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let endpoint = format!("https://{EIAM_HOST}:{fake_port}");

    // What a team applies: the AccessKey Secret, a provider trusting the private CA, a resource.
    let secrets = ns.api::<Secret>(&client);
    let access_key: Secret = serde_json::from_value(json!({
        "metadata": {"name": "eiam-access-key"},
        "stringData": {"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &access_key)
        .await
        .unwrap();
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(pki.ca_pem_text());
    let provider: EiamProvider = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider",
        "metadata": {"name": "private-ca"},
        "spec": {
            "endpoint": endpoint,
            "caBundle": ca_bundle,
            "auth": {"accessKey": {"secretRef": {
                "name": "eiam-access-key", "accessKeyIdKey": "accessKeyId",
                "accessKeySecretKey": "accessKeySecret"}}},
        },
    }))
    .unwrap();
    ns.api::<EiamProvider>(&client)
        .create(&PostParams::default(), &provider)
        .await
        .unwrap();
    let resource: ApplicationClientSecret = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": {"name": "from-the-image"},
        "spec": {"instanceId": INSTANCE, "applicationId": APPLICATION,
                 "providerRef": {"kind": "EiamProvider", "name": "private-ca"}},
    }))
    .unwrap();
    let resources = ns.api::<ApplicationClientSecret>(&client);
    resources
        .create(&PostParams::default(), &resource)
        .await
        .unwrap();

    // The container: the chart's securityContext and environment. Host networking stands in for the pod network
    // (the control plane and the fake listen on loopback), so the ports are free ones instead of the chart's.
    let (pod, container) = chart_container(ns.name());
    let kubeconfig_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kubeconfig = readable_by_the_chart_user(&cp.kubeconfig, kubeconfig_dir.path(), &pod);
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(security_flags(
        &pod["securityContext"],
        &container["securityContext"],
    ));
    let name = format!("eiam-image-test-{}", ns.name());
    let metrics_port = free_port();
    let health_port = free_port();
    args.extend([
        "--name".into(),
        name.clone(),
        "--network".into(),
        "host".into(),
        "--add-host".into(),
        format!("{EIAM_HOST}:127.0.0.1"),
        // Podman's default limits are refused on this machine: the container gets the test's own open-file limit,
        // as a pod gets its node's, and 4096 processes (runc is refused higher ones here; the operator runs a
        // thread per core).
        "--ulimit".into(),
        format!("nofile={}", own_limit(libc::RLIMIT_NOFILE)),
        "--ulimit".into(),
        "nproc=4096:4096".into(),
        // The admin kubeconfig stands in for the ServiceAccount token a pod would have.
        "--volume".into(),
        format!("{}:/var/run/eiam-test/kubeconfig:ro", kubeconfig.display()),
        "--env".into(),
        "KUBECONFIG=/var/run/eiam-test/kubeconfig".into(),
    ]);
    let mut env_names = BTreeSet::new();
    for variable in container["env"].as_array().into_iter().flatten() {
        let key = variable["name"].as_str().expect("env name");
        env_names.insert(key.to_owned());
        let value = match key {
            "EIAM_OPERATOR_METRICS_ADDR" => format!("127.0.0.1:{metrics_port}"),
            "EIAM_OPERATOR_HEALTH_ADDR" => format!("127.0.0.1:{health_port}"),
            // The downward API's values.
            "POD_NAME" => name.clone(),
            "POD_NAMESPACE" => ns.name().to_owned(),
            _ => variable["value"]
                .as_str()
                .unwrap_or_else(|| panic!("env {key} has no literal value: {variable}"))
                .to_owned(),
        };
        args.extend(["--env".into(), format!("{key}={value}")]);
    }
    for expected in [
        "EIAM_OPERATOR_NAMESPACE",
        "EIAM_OPERATOR_HEALTH_ADDR",
        "POD_NAMESPACE",
    ] {
        assert!(env_names.contains(expected), "the chart sets {expected}");
    }
    args.push(IMAGE.into());
    let _guard = ContainerGuard(name.clone());

    let started = Instant::now();
    let mut operator = ProcessSpec::new("operator-container", "podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(&args)
        .spawn();
    let readyz = format!("http://127.0.0.1:{health_port}/readyz");
    let ready_after = loop {
        if let Some((200, _)) = get_status(&readyz).await {
            break started.elapsed();
        }
        if let Some(status) = operator.try_wait() {
            panic!(
                "the container exited ({status}) before /readyz answered:\n{}",
                operator.output()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/readyz did not answer 200 within 60 s:\n{}",
            operator.output()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // The resource becomes Ready: the operator inside the image resolved the host name, trusted the private CA,
    // signed with the AccessKey and published the Secret.
    let ready = wait_until("the resource Ready", Duration::from_secs(60), || {
        let resources = resources.clone();
        async move {
            let object = resources.get("from-the-image").await.ok()?;
            let conditions = object.status.as_ref()?.conditions.clone();
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(object)
        }
    })
    .await;
    let resource_ready_after = started.elapsed();
    let published = secrets.get("from-the-image").await.unwrap();
    let data = published.data.unwrap_or_default();
    assert!(
        data.contains_key("clientId") && data.contains_key("clientSecret"),
        "published keys: {:?}",
        data.keys().collect::<Vec<_>>()
    );
    assert!(ready.status.is_some_and(|s| s.current_secret_id.is_some()));

    let (status, metrics) = get_status(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("/metrics answers");
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("eiam_operator_build_info"),
        "/metrics: {metrics}"
    );

    // The kubelet stops a pod with SIGTERM to the container's process.
    let stopping = Instant::now();
    podman_ok(&["kill", "--signal", "TERM", &name]);
    let exit = loop {
        if let Some(status) = operator.try_wait() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the container did not stop within 30 s of SIGTERM:\n{}",
            operator.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped_after = stopping.elapsed();
    let logs = operator.output();
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM:\n{logs}");
    assert!(
        !logs.contains(ACCESS_KEY_SECRET),
        "the AccessKey secret leaked into the logs"
    );

    let size: u64 = podman_ok(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .expect("image size in bytes");
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/image/eiam-operator.oci.tar");
    let archive_size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!(
        "image {IMAGE}: {:.1} MB ({size} bytes; OCI archive {:.1} MB); podman run to /readyz 200: {} ms; \
         to the resource Ready: {} ms; SIGTERM to exit 0: {} ms",
        size as f64 / 1e6,
        archive_size as f64 / 1e6,
        ready_after.as_millis(),
        resource_ready_after.as_millis(),
        stopped_after.as_millis()
    );
    // The size is deterministic, so its goal is checked; the times depend on the machine's load and are printed.
    assert!(
        size < 20_000_000,
        "the image grew past its 20 MB goal ({size} bytes): find what the binary gained"
    );
    drop(fake);
}

/// The registry recipe (`Dockerfile`) builds the layout `make image` tests: its last stage holds the instructions
/// of `hack/image/Containerfile`, with the root filesystem copied from its build stage, which `make image-rootfs`
/// stages as `make image` does.
#[test]
fn the_dockerfile_ends_with_the_local_recipe() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let instructions = |path: &str| -> Vec<String> {
        std::fs::read_to_string(repo.join(path))
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
            .lines()
            .map(str::trim_end)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let dockerfile = instructions("Dockerfile");
    let last_stage = dockerfile
        .iter()
        .rposition(|line| line.starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    let from_registry: Vec<String> = dockerfile[last_stage..]
        .iter()
        .map(|line| line.replace("COPY --from=build /rootfs/ /", "COPY rootfs/ /"))
        .collect();
    assert_eq!(from_registry, instructions("hack/image/Containerfile"));
    assert!(
        dockerfile[..last_stage]
            .iter()
            .any(|line| line.contains("make image-rootfs")),
        "the Dockerfile's build stage stages the root filesystem with `make image-rootfs`"
    );
}

/// The image holds the operator binary, the CA bundle, passwd/group naming 65532 and the licence — no shell, no
/// test code (the failpoint and the fake are behind the `testing` feature, which the image build leaves off) — and
/// runs as 65532.
#[test]
fn the_image_holds_the_binary_the_ca_bundle_and_passwd_and_nothing_else() {
    require_image();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let name = format!("eiam-image-layout-{}", std::process::id());
    podman_ok(&["create", "--name", &name, IMAGE]);
    let _guard = ContainerGuard(name.clone());
    let exported = dir.path().join("rootfs.tar");
    podman_ok(&["export", "--output", exported.to_str().unwrap(), &name]);
    let listing = Command::new("tar")
        .arg("--list")
        .arg("--verbose")
        .arg("--numeric-owner")
        .arg("--file")
        .arg(&exported)
        .output()
        .expect("run tar");
    assert!(listing.status.success(), "tar --list failed");
    // `MODE OWNER/GROUP SIZE DATE TIME NAME`: everything but the size.
    let entries: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            format!(
                "{} {} {} {} {}",
                fields[0], fields[1], fields[3], fields[4], fields[5]
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            "-r--r--r-- 0/0 1970-01-01 00:00 LICENSE",
            "-r-xr-xr-x 0/0 1970-01-01 00:00 eiam-operator",
            "drwxr-xr-x 0/0 1970-01-01 00:00 etc/",
            "-r--r--r-- 0/0 1970-01-01 00:00 etc/group",
            "-r--r--r-- 0/0 1970-01-01 00:00 etc/passwd",
            "drwxr-xr-x 0/0 1970-01-01 00:00 etc/ssl/",
            "drwxr-xr-x 0/0 1970-01-01 00:00 etc/ssl/certs/",
            "-r--r--r-- 0/0 1970-01-01 00:00 etc/ssl/certs/ca-certificates.crt",
        ]
    );

    let config: Value = serde_json::from_str(&podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        IMAGE,
    ]))
    .unwrap();
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/eiam-operator"]));

    let binary = dir.path().join("eiam-operator");
    podman_ok(&[
        "cp",
        &format!("{name}:/eiam-operator"),
        binary.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&binary).unwrap();
    for test_only in [&b"EIAM_OPERATOR_FAILPOINT"[..], b"failpoint", b"/_fake"] {
        assert!(
            !bytes.windows(test_only.len()).any(|w| w == test_only),
            "the shipped binary holds test-only code: {:?}",
            String::from_utf8_lossy(test_only)
        );
    }
    // Static: no program interpreter (ELF PT_INTERP) to look for in an image that has none.
    let headers = Command::new("readelf")
        .args(["--program-headers", "--wide"])
        .arg(&binary)
        .output()
        .expect("run readelf (binutils)");
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(
        headers.contains("LOAD"),
        "readelf read the binary: {headers}"
    );
    assert!(
        !headers.contains("INTERP"),
        "the binary is dynamically linked:\n{headers}"
    );
}
