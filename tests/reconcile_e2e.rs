//! The reconciler end to end (issue 4, behaviours 1-16): each test runs the real `eiam-operator` binary against the
//! real control plane (tests/testenv) and a fresh `fake-eiam`, and asserts what a user and EIAM would see: EIAM calls
//! (from the fake's call log), the Secret, the resource's status and conditions, Events, workloads.
//!
//! Every scenario ends with a leak scan (`Scenario::finish`): no secret value the fake ever held may appear in the
//! operator's logs, the namespace's Events or the resources.
//!
//! Tests run in parallel: each has its own namespace, fake EIAM and operator (`--namespace`). Test names start with
//! the behaviour's number in issue 4; the modules group them by theme.

mod common;
#[path = "reconcile_e2e/support.rs"]
mod support;

#[path = "reconcile_e2e/chaos.rs"]
mod chaos;
#[path = "reconcile_e2e/cli.rs"]
mod cli;
#[path = "reconcile_e2e/crash.rs"]
mod crash;
#[path = "reconcile_e2e/deletion.rs"]
mod deletion;
#[path = "reconcile_e2e/drift.rs"]
mod drift;
#[path = "reconcile_e2e/failover.rs"]
mod failover;
#[path = "reconcile_e2e/faults.rs"]
mod faults;
#[path = "reconcile_e2e/isolation.rs"]
mod isolation;
#[path = "reconcile_e2e/issue.rs"]
mod issue;
#[path = "reconcile_e2e/kstatus.rs"]
mod kstatus;
#[path = "reconcile_e2e/leaks.rs"]
mod leaks;
#[path = "reconcile_e2e/limits.rs"]
mod limits;
#[path = "reconcile_e2e/providers.rs"]
mod providers;
#[path = "reconcile_e2e/rotation.rs"]
mod rotation;
#[path = "reconcile_e2e/steady.rs"]
mod steady;
#[path = "reconcile_e2e/templates.rs"]
mod templates;
#[path = "reconcile_e2e/tenancy.rs"]
mod tenancy;
#[path = "reconcile_e2e/usage.rs"]
mod usage;
#[path = "reconcile_e2e/windows.rs"]
mod windows;
