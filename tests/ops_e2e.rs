//! Operations end to end (issue 6): the real `eiam-operator` binary against the real control plane (tests/testenv)
//! and the fake EIAM — a Prometheus scrape checked by `promtool`, the health probes, leader election between two
//! processes with a SIGKILLed leader, graceful SIGTERM, and the logs of a rotation.
//!
//! Numbers (takeover and shutdown times) are printed; run with `--nocapture` to see them. Each test has its own
//! namespace, fake, operators and Lease, so they run in parallel.

mod common;
#[path = "ops_e2e/support.rs"]
mod support;

#[path = "ops_e2e/leader.rs"]
mod leader;
#[path = "ops_e2e/logs.rs"]
mod logs;
#[path = "ops_e2e/metrics.rs"]
mod metrics;
#[path = "ops_e2e/observer.rs"]
mod observer;
#[path = "ops_e2e/shutdown.rs"]
mod shutdown;
