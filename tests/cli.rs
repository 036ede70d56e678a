//! The admin CLI as a user runs it: the real `eiam-operator` binary against a real `fake-eiam` process, for all
//! seven actions with V1 and V3 signatures and with AccessKey and STS credentials, plus the failure paths.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const INSTANCE: &str = "idaas_cli";
const APPLICATION: &str = "app_cli";
const AK_ID: &str = "LTAI5tCliTestKey";
const AK_SECRET: &str = "cli-test-access-key-secret";
const STS_ID: &str = "STS.NUCliTestTemporary";
const STS_SECRET: &str = "cli-test-sts-secret";
const STS_TOKEN: &str = "CAIS-cli-test-security-token";

/// A running `fake-eiam` process; killed when dropped.
struct Fake {
    child: Child,
    url: String,
}

impl Fake {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-eiam"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--access-key", &format!("{AK_ID}:{AK_SECRET}")])
            .args(["--sts-key", &format!("{STS_ID}:{STS_SECRET}:{STS_TOKEN}")])
            .args(["--application", &format!("{INSTANCE}/{APPLICATION}")])
            .env_remove("FAKE_EIAM_ACCESS_KEYS")
            .env_remove("FAKE_EIAM_STS_KEYS")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fake-eiam");
        let stdout = child.stdout.take().expect("fake-eiam stdout");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("read fake-eiam's first line");
        let url = first_line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in fake-eiam's first line: {first_line:?}"))
            .to_owned();
        Fake { child, url }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which credentials the CLI finds in its environment.
#[derive(Clone, Copy, Debug)]
enum Creds {
    AccessKey,
    Sts,
    WrongSecret,
    None,
}

/// One CLI run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    fn ok(self) -> Value {
        assert_eq!(
            self.code, 0,
            "CLI failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.json()
    }
}

fn cli(fake: &Fake, version: &str, creds: Creds, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_eiam-operator"));
    command
        .arg("eiam")
        .args(args)
        .args(["--endpoint", &fake.url, "--signature-version", version])
        // Only what this test sets: no credentials, region or ids leak in from the caller's environment.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    match creds {
        Creds::AccessKey => {
            command
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", AK_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET);
        }
        Creds::Sts => {
            command
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", STS_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", STS_SECRET)
                .env("ALIBABA_CLOUD_SECURITY_TOKEN", STS_TOKEN);
        }
        Creds::WrongSecret => {
            command
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", AK_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret");
        }
        Creds::None => {}
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run eiam-operator");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

const APP: [&str; 4] = ["--instance-id", INSTANCE, "--application-id", APPLICATION];

fn with_app<'a>(action: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![action];
    args.extend_from_slice(&APP);
    args.extend_from_slice(extra);
    args
}

fn listed(fake: &Fake, version: &str, creds: Creds) -> Vec<Value> {
    let list = cli(fake, version, creds, &with_app("list", &[])).ok();
    assert!(
        list["RequestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{list}"
    );
    list["ApplicationClientSecrets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find<'a>(secrets: &'a [Value], secret_id: &str) -> &'a Value {
    secrets
        .iter()
        .find(|s| s["SecretId"] == secret_id)
        .unwrap_or_else(|| panic!("{secret_id} not listed: {secrets:?}"))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// All seven actions in the order a platform engineer would try them, checking each effect through List/Obtain.
fn seven_actions(version: &str, creds: Creds) {
    let fake = Fake::start();
    assert!(listed(&fake, version, creds).is_empty());

    // create: the value is masked by default, and the expiry is now + --expires-after.
    let before = now_ms();
    let created = cli(
        &fake,
        version,
        creds,
        &with_app("create", &["--expires-after", "720h"]),
    )
    .ok();
    let after = now_ms();
    let first = created["ApplicationClientSecret"]["SecretId"]
        .as_str()
        .expect("SecretId")
        .to_owned();
    let masked = created["ApplicationClientSecret"]["ClientSecret"]
        .as_str()
        .expect("ClientSecret")
        .to_owned();
    assert!(
        masked.contains("*****"),
        "create printed the secret unmasked: {created}"
    );
    assert_eq!(
        created["ApplicationClientSecret"]["ClientId"]
            .as_str()
            .map(str::is_empty),
        Some(false)
    );

    let secrets = listed(&fake, version, creds);
    assert_eq!(secrets.len(), 1);
    let expires = find(&secrets, &first)["ExpirationTime"]
        .as_i64()
        .expect("ExpirationTime");
    let lifetime_ms = 720 * 3_600_000;
    assert!(
        (before + lifetime_ms - 1_000..=after + lifetime_ms + 1_000).contains(&expires),
        "ExpirationTime {expires} is not now + 720h"
    );

    // obtain: masked by default, clear with --show-secret, and the clear value matches the masked one.
    let secret_args = ["--secret-id", first.as_str()];
    let obtained = cli(&fake, version, creds, &with_app("obtain", &secret_args)).ok();
    assert_eq!(
        obtained["ApplicationClientSecret"]["ClientSecret"],
        masked.as_str()
    );
    let mut show = secret_args.to_vec();
    show.push("--show-secret");
    let clear = cli(&fake, version, creds, &with_app("obtain", &show)).ok();
    let value = clear["ApplicationClientSecret"]["ClientSecret"]
        .as_str()
        .expect("clear value");
    assert!(
        !value.contains('*') && value.len() >= 12,
        "obtain --show-secret gave {value:?}"
    );
    assert!(masked.starts_with(&value[..4]) && masked.ends_with(&value[value.len() - 2..]));
    assert_eq!(clear["ApplicationClientSecret"]["Status"], "enabled");

    // disable / enable, observed through List.
    let disabled = cli(&fake, version, creds, &with_app("disable", &secret_args)).ok();
    assert_eq!(disabled["Action"], "DisableApplicationClientSecret");
    assert_eq!(disabled["SecretId"], first.as_str());
    assert_eq!(
        find(&listed(&fake, version, creds), &first)["Status"],
        "disabled"
    );
    cli(&fake, version, creds, &with_app("enable", &secret_args)).ok();
    assert_eq!(
        find(&listed(&fake, version, creds), &first)["Status"],
        "enabled"
    );

    // update-expiration: the new expiry is now + 48h.
    let mut update = secret_args.to_vec();
    update.extend_from_slice(&["--expires-after", "48h"]);
    let before = now_ms();
    let updated = cli(
        &fake,
        version,
        creds,
        &with_app("update-expiration", &update),
    )
    .ok();
    let after = now_ms();
    let sent = updated["ExpirationTime"]
        .as_i64()
        .expect("ExpirationTime echoed");
    let window = before + 48 * 3_600_000..=after + 48 * 3_600_000;
    assert!(window.contains(&sent), "sent {sent}");
    assert_eq!(
        find(&listed(&fake, version, creds), &first)["ExpirationTime"],
        sent
    );

    // A second secret without expiry, then the two-secret limit answers with EIAM's code.
    let second = cli(&fake, version, creds, &with_app("create", &[])).ok();
    let second_id = second["ApplicationClientSecret"]["SecretId"]
        .as_str()
        .expect("SecretId")
        .to_owned();
    let third = cli(&fake, version, creds, &with_app("create", &[]));
    assert_eq!(third.code, 1, "third create must fail: {}", third.stdout);
    assert!(third.stderr.contains("QuotaExceeded"), "{}", third.stderr);
    assert!(third.stderr.contains("RequestId"), "{}", third.stderr);
    assert!(
        third.json()["Error"]["Code"]
            .as_str()
            .is_some_and(|c| c.starts_with("QuotaExceeded"))
    );

    // delete: gone from List.
    let deleted = cli(
        &fake,
        version,
        creds,
        &with_app("delete", &["--secret-id", &second_id]),
    )
    .ok();
    assert_eq!(deleted["Action"], "DeleteApplicationClientSecret");
    let remaining = listed(&fake, version, creds);
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0]["SecretId"], first.as_str());
}

#[test]
fn seven_actions_v1_access_key() {
    seven_actions("v1", Creds::AccessKey);
}

#[test]
fn seven_actions_v3_access_key() {
    seven_actions("v3", Creds::AccessKey);
}

#[test]
fn seven_actions_v1_sts() {
    seven_actions("v1", Creds::Sts);
}

#[test]
fn seven_actions_v3_sts() {
    seven_actions("v3", Creds::Sts);
}

#[test]
fn wrong_access_key_secret_fails_with_eiam_code_message_and_request_id() {
    let fake = Fake::start();
    for version in ["v1", "v3"] {
        let run = cli(&fake, version, Creds::WrongSecret, &with_app("list", &[]));
        assert_eq!(run.code, 1, "{version}: {}", run.stderr);
        assert!(
            run.stderr.contains("SignatureDoesNotMatch"),
            "{version}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("RequestId"),
            "{version}: {}",
            run.stderr
        );
        let error = &run.json()["Error"];
        assert_eq!(error["Code"], "SignatureDoesNotMatch");
        assert!(error["Message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["RequestId"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(
            !run.stderr.contains("not-the-secret") && !run.stdout.contains("not-the-secret"),
            "the AccessKey secret was printed"
        );
    }
}

#[test]
fn unknown_application_and_secret_fail_with_eiam_codes() {
    let fake = Fake::start();
    let run = cli(
        &fake,
        "v1",
        Creds::AccessKey,
        &[
            "list",
            "--instance-id",
            INSTANCE,
            "--application-id",
            "app_missing",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("EntityNotExists"), "{}", run.stderr);
    let run = cli(
        &fake,
        "v3",
        Creds::AccessKey,
        &with_app("obtain", &["--secret-id", "sci_missing"]),
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("EntityNotExists"), "{}", run.stderr);
}

#[test]
fn bad_arguments_fail_before_anything_is_sent() {
    let fake = Fake::start();
    let run = cli(
        &fake,
        "v1",
        Creds::AccessKey,
        &with_app("create", &["--expires-after", "3d"]),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--expires-after") && run.stderr.contains("\"3d\""),
        "{}",
        run.stderr
    );

    let run = cli(&fake, "v1", Creds::None, &with_app("list", &[]));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        "{}",
        run.stderr
    );

    let run = cli(&fake, "v2", Creds::AccessKey, &with_app("list", &[]));
    assert_eq!(run.code, 2, "clap rejects an unknown signature version");

    // Plain HTTP is refused for anything but loopback.
    let output = Command::new(env!("CARGO_BIN_EXE_eiam-operator"))
        .args(["eiam", "list", "--endpoint", "http://eiam.example.com"])
        .args(APP)
        .env_clear()
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", AK_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--endpoint"));

    // No calls reached the fake from any of these runs.
    let calls = fake_calls(&fake);
    assert_eq!(calls, 0, "arguments errors must not send requests");
}

/// Number of calls the fake recorded, from its admin endpoint (a plain HTTP/1.1 GET over a TCP socket).
fn fake_calls(fake: &Fake) -> usize {
    use std::io::{Read, Write};
    let authority = fake.url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to fake-eiam");
    write!(
        stream,
        "GET /_fake/calls HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let value: Value = serde_json::from_str(&body).expect("calls JSON");
    value
        .as_array()
        .or_else(|| value["calls"].as_array())
        .map(Vec::len)
        .expect("a list of calls")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
