//! The anchor: the official Alibaba Cloud Python SDK (`alibabacloud-eiam20211201`) drives the real `fake-eiam`
//! binary through all seven actions, V3 and V1, AccessKey and STS, and gets `SignatureDoesNotMatch` for a wrong
//! secret. A client no one here wrote is the proof that the fake verifies signatures as Alibaba does.
//!
//! Needs the virtualenv that `make pyenv` (a dependency of `make test`) installs under `target/pyenv`. Without it
//! this test FAILS: a skipped anchor would silently stop proving anything.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Kills the fake when the test ends, however it ends.
struct RunningFake {
    child: Child,
    url: String,
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fake(args: &[&str]) -> RunningFake {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-eiam"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fake-eiam");
    let stdout = child.stdout.take().expect("fake-eiam stdout");
    // Read on a thread so that a fake that never prints fails the test after 30 s instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first_line = match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("fake-eiam printed nothing within 30 s");
        }
    };
    let url = first_line
        .trim()
        .strip_prefix("fake-eiam listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from fake-eiam: {first_line:?}"))
        .to_owned();
    RunningFake { child, url }
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("EIAM_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "the Python SDK virtualenv is missing at {}: run `make pyenv` (make test does it) — this anchor test \
         must not be skipped",
        venv.display()
    );
    python
}

#[test]
fn official_python_sdk_drives_all_seven_actions_against_fake_eiam() {
    let python = venv_python();
    let fake = start_fake(&[
        "--access-key",
        "LTAIanchorAK:anchor-secret-1",
        "--sts-key",
        "STS.anchorKey:anchor-sts-secret:anchor+sts/token==",
        "--application",
        "idaas_anchor/app_anchor",
    ]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_anchor.py");
    let output = Command::new(python)
        .arg(script)
        .args(["--endpoint", &fake.url])
        .args(["--instance", "idaas_anchor", "--application", "app_anchor"])
        .args(["--ak", "LTAIanchorAK:anchor-secret-1"])
        .args([
            "--sts",
            "STS.anchorKey:anchor-sts-secret:anchor+sts/token==",
        ])
        .output()
        .expect("run the Python SDK anchor script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sdk_anchor.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for line in [
        "ok: v3/ak: all seven actions",
        "ok: v3/sts: all seven actions",
        "ok: v1/ak: all seven actions",
        "ok: v1/sts: all seven actions",
        "ok: v3: wrong secret rejected with SignatureDoesNotMatch",
        "ok: v1: wrong secret rejected with SignatureDoesNotMatch",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sdk-anchor: ") && last.ends_with(" checks passed"),
        "unexpected last line {last:?}"
    );
    println!("{stdout}");
}
