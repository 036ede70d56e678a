//! The `fake-eiam` binary: configuration from a JSON file plus flags, the URL on the first stdout line, and a clear
//! error naming the field for a bad configuration.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::io::{BufRead, BufReader, Read};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The first `n` lines the process prints, waiting at most 30 s: a missing line fails the test instead of
/// hanging it.
fn first_lines(stdout: ChildStdout, n: usize) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(n) {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("fake-eiam printed no line {} within 30 s", i + 1))
        })
        .collect()
}

#[test]
fn config_file_and_flags_combine_and_the_url_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fake.json");
    std::fs::write(
        &config,
        r#"{"instances":[{"id":"idaas_file","applications":[{"id":"app_file","clientId":"client_file"}]}],
            "accessKeys":[{"id":"AKfile","secret":"s"}],"neverExpiresAs":"zero"}"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-eiam"))
        .arg("--config")
        .arg(&config)
        .args([
            "--application",
            "idaas_flag/app_flag",
            "--access-key",
            "AKflag:s2",
        ])
        .args([
            "--sts-listen",
            "127.0.0.1:0",
            "--metadata-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = first_lines(child.stdout.take().unwrap(), 3);
    let line = lines.first().cloned().unwrap_or_default();
    let stand_ins = lines[1..].join("\n");
    let url = line
        .trim()
        .strip_prefix("fake-eiam listening on http://127.0.0.1:")
        .map(|port| format!("http://127.0.0.1:{port}"));
    let state = url.as_ref().map(|url| {
        // A plain HTTP/1.0 GET, so this test needs no async runtime.
        let addr = url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(
            &mut stream,
            b"GET /_fake/state HTTP/1.0\r\nhost: fake\r\n\r\n",
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(url.is_some(), "first line was {line:?}");
    assert!(
        stand_ins.contains("fake-eiam sts on http://127.0.0.1:")
            && stand_ins.contains("fake-eiam metadata on http://127.0.0.1:"),
        "{stand_ins:?}"
    );
    let state = state.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(state.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body["instances"]["idaas_file"]["applications"]["app_file"]["clientId"],
        "client_file"
    );
    assert_eq!(
        body["instances"]["idaas_flag"]["applications"]["app_flag"]["clientId"],
        "app_flag"
    );
    let keys: Vec<&str> = body["accessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "AKfile",
            "AKflag",
            "STS.FakeAccessKeyId",
            "STS.FakeEcsAccessKeyId"
        ]
    );
    assert!(
        !state.contains("\"s2\""),
        "state must not show AccessKey secrets"
    );
}

#[test]
fn a_bad_config_names_the_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.json");
    std::fs::write(&config, r#"{"acessKeys":[]}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fake-eiam"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("acessKeys"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_fake-eiam"))
        .args(["--access-key", "no-colon"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--access-key"));
}
