//! Waiting without sleeping blindly: poll a probe until it yields a value or a deadline passes, and pick free
//! loopback ports so tests can run in parallel.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` until it returns `Some`, starting at 20 ms between attempts and backing off to 500 ms.
/// Panics with `what` and the elapsed time when `timeout` passes first.
pub async fn wait_until<T, F, Fut>(what: impl Display, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut interval = Duration::from_millis(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(interval.min(timeout.saturating_sub(start.elapsed()))).await;
        interval = (interval * 2).min(Duration::from_millis(500));
    }
}

/// A loopback port that was free a moment ago. Prefer letting the program under test bind port 0 and report its
/// address; use this only for programs that need a port up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0 to pick a free port")
}
