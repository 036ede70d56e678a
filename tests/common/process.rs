//! Child processes for the tests (the control plane, `fake-eiam`, the operator): spawned so that they can never
//! outlive the test binary, with stdout and stderr captured for assertions and in a log file, killed on drop.
//!
//! Three things keep stray processes away, even when a test panics or the test binary is killed:
//! - `Drop` kills the child's whole process group (it runs in a group of its own);
//! - every child gets `PR_SET_PDEATHSIG`, and is spawned from one long-lived thread, because Linux sends that
//!   signal when the spawning *thread* exits — a test's own thread would end with the test;
//! - the control plane additionally exits when its stdin pipe closes (see `control_plane`).

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Which stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What to run. Build it with the chained setters, then [`ProcessSpec::spawn`].
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    current_dir: Option<PathBuf>,
    pipe_stdin: bool,
    parent_death_signal: i32,
}

impl ProcessSpec {
    /// `name` labels the captured output and the log file (`fake-eiam`, `operator`, ...).
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            current_dir: None,
            pipe_stdin: false,
            parent_death_signal: libc::SIGKILL,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Keep a pipe to the child's stdin (otherwise stdin is /dev/null). It closes when the `Process` is dropped
    /// or the test binary exits, whichever comes first.
    pub fn pipe_stdin(mut self) -> Self {
        self.pipe_stdin = true;
        self
    }

    /// The signal the child gets when the test binary dies (default SIGKILL). SIGTERM lets it clean up.
    pub fn parent_death_signal(mut self, signal: i32) -> Self {
        self.parent_death_signal = signal;
        self
    }

    /// Starts the process. Panics when it cannot be started: a test cannot go on without it.
    pub fn spawn(self) -> Process {
        let name = self.name.clone();
        let program = self.program.clone();
        let pipe_stdin = self.pipe_stdin;
        let mut child = on_spawner_thread(move || self.command().spawn())
            .unwrap_or_else(|e| panic!("start {name} ({}): {e}", program.display()));

        let output = Arc::new(Mutex::new(Vec::new()));
        let log_path = log_dir().join(format!("{name}-{}.log", child.id()));
        let log = File::create(&log_path)
            .map(|f| Arc::new(Mutex::new(f)))
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let readers = [
            child
                .stdout
                .take()
                .map(|out| capture(out, Stream::Stdout, &output, &log)),
            child
                .stderr
                .take()
                .map(|err| capture(err, Stream::Stderr, &output, &log)),
        ];
        Process {
            name,
            stdin: if pipe_stdin { child.stdin.take() } else { None },
            child,
            output,
            log_path,
            readers: readers.into_iter().flatten().collect(),
            exit: None,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(if self.pipe_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let signal = self.parent_death_signal;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("test binary exited during spawn"));
                }
                Ok(())
            });
        }
        command
    }
}

/// A running child process. Dropping it kills its process group; when the test is panicking, its captured output
/// is printed so the failure can be understood.
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<(Stream, String)>>>,
    log_path: PathBuf,
    readers: Vec<std::thread::JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Process {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the output is also written (under `target/tmp/logs/`), for reading after the run.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// All captured stdout so far.
    pub fn stdout(&self) -> String {
        self.lines(Some(Stream::Stdout))
    }

    /// All captured stderr so far.
    pub fn stderr(&self) -> String {
        self.lines(Some(Stream::Stderr))
    }

    /// Both streams, interleaved in the order the lines were read.
    pub fn output(&self) -> String {
        self.lines(None)
    }

    fn lines(&self, stream: Option<Stream>) -> String {
        let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        output
            .iter()
            .filter(|(s, _)| stream.is_none_or(|want| *s == want))
            .fold(String::new(), |mut all, (_, line)| {
                let _ = writeln!(all, "{line}");
                all
            })
    }

    /// Waits until a line containing `needle` appears on either stream and returns it. Panics on timeout or when
    /// the process exits first, showing what it printed.
    pub async fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let found = {
                let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
                output
                    .iter()
                    .find(|(_, line)| line.contains(needle))
                    .map(|(_, line)| line.clone())
            };
            if let Some(line) = found {
                return line;
            }
            if let Some(status) = self.try_wait() {
                // Let the readers drain what the process printed last.
                self.join_readers();
                if let Some(line) = self.output().lines().find(|l| l.contains(needle)) {
                    return line.to_owned();
                }
                panic!(
                    "{} exited ({status}) before printing {needle:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            if start.elapsed() >= timeout {
                panic!(
                    "{} did not print {needle:?} within {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Sends `signal` (for example `libc::SIGTERM`) to the process itself.
    pub fn signal(&self, signal: i32) {
        if self.exit.is_none() {
            // SAFETY: kill(2) with a pid we own; a stale pid is impossible before we reap it.
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit before SIGKILL. Returns how it exited.
    pub async fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Some(status) = self.try_wait() {
                self.join_readers();
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill()
    }

    /// SIGKILL to the whole process group, and reaps the child.
    pub fn kill(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the process group the child leads (process_group(0) made its pid the group id).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let status = match self.exit {
            Some(status) => status,
            None => self.child.wait().expect("reap child"),
        };
        self.exit = Some(status);
        self.join_readers();
        status
    }

    /// Closes the child's stdin (if it was piped).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stdin = None;
        let status = self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}, {status}) output, also in {} ---\n{}--- end of {} ---",
                self.name,
                self.child.id(),
                self.log_path.display(),
                self.output(),
                self.name
            );
        }
    }
}

/// Copies `stream` line by line into the shared buffer and the log file.
fn capture(
    stream: impl std::io::Read + Send + 'static,
    kind: Stream,
    output: &Arc<Mutex<Vec<(Stream, String)>>>,
    log: &Arc<Mutex<File>>,
) -> std::thread::JoinHandle<()> {
    let output = Arc::clone(output);
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{line}");
            }
            output
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((kind, line));
        }
    })
}

/// `target/tmp/logs`, created on first use; logs older than a day are removed then.
pub fn log_dir() -> PathBuf {
    static PRUNED: std::sync::Once = std::sync::Once::new();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("logs");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    PRUNED.call_once(|| super::control_plane::prune_old_runs(&dir, ""));
    dir
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Runs `spawn` on one thread that lives as long as the test binary, so `PR_SET_PDEATHSIG` fires only when the
/// test binary dies, not when the test thread that asked for the process finishes.
fn on_spawner_thread<T: Send + 'static>(spawn: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-process-spawner".into())
            .spawn(move || {
                for job in jobs {
                    job();
                }
            })
            .expect("start the process spawner thread");
        Mutex::new(sender)
    });
    let (result_tx, result_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Box::new(move || {
            let _ = result_tx.send(spawn());
        }))
        .expect("process spawner thread is gone");
    result_rx.recv().expect("process spawner thread is gone")
}
