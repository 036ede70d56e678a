//! Test-only failpoints: `EIAM_OPERATOR_FAILPOINT=<name>` kills the process at that point, so a test can prove
//! crash safety exactly where a crash hurts most. Compiled only with the `testing` feature: the shipped binary has
//! no failpoint at all.

/// The environment variable naming the failpoint to die at.
pub const ENV: &str = "EIAM_OPERATOR_FAILPOINT";

/// Dies at once, like `kill -9`, when the failpoint `name` is armed: no destructors run, no status is written.
pub fn hit(name: &str) {
    if std::env::var(ENV).is_ok_and(|armed| armed == name) {
        eprintln!("failpoint {name} reached: aborting the process");
        std::process::abort();
    }
}
