//! Fault injection: throttling, 5xx answers, latency, dropped connections and a QPS cap, each optionally aimed at
//! one action, so that client retry and recovery paths can be tested against misbehaviour on demand; and the ways a
//! hostile endpoint (a tenant's own) misbehaves: never answering, dripping or streaming an endless body, a
//! `x-acs-retry-after` no number fits, a fresh error code on every call.
//!
//! Rules are checked in order for every API call; the first rule that fires decides the outcome, and a rule counts
//! only the calls that reach it. Latency rules are separate: every latency rule that fires adds its delay.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::wire::ApiError;
use crate::eiam::types::Action;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Answer `Throttling` (HTTP 400) with `x-acs-retry-after`.
    Throttle,
    /// Answer `InternalError` (500) or `ServiceUnavailable` (503).
    ServerError,
    /// Wait `latencyMs` before handling the call.
    Latency,
    /// Close the connection without a response, `before` or `after` the action is applied.
    DropConnection,
    /// Answer `Throttling.User` to calls beyond `qps` per second.
    QpsCap,
    /// Accept the request and never answer (the connection stays open).
    Hang,
    /// Answer 200 with headers, then one byte of body every `latencyMs` (default 100), forever.
    Drip,
    /// Answer 200 with a body that never ends, as fast as the client reads.
    EndlessBody,
    /// Answer an error (HTTP 400) whose `Code` is new on every call (`Nonsense.<n>`).
    FreshCode,
}

/// Whether a dropped connection happens before the action changes state or after (an ambiguous Create).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DropWhen {
    /// The call has no effect.
    #[default]
    Before,
    /// The call takes effect, but the caller never hears about it.
    After,
}

/// One fault rule. Trigger: `next` (the next N calls), `everyNth` (calls N, 2N, ...), or neither (every call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// What the rule does.
    pub kind: FaultKind,
    /// Only calls of this action (e.g. `CreateApplicationClientSecret`); default: every action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Fire for the next N calls that reach the rule, then stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// Fire on every Nth call that reaches the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_nth: Option<u64>,
    /// serverError: 5xx status (default 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// throttle/serverError/qpsCap: the error code (defaults `Throttling`, `InternalError`/`ServiceUnavailable`,
    /// `Throttling.User`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// throttle/qpsCap: `x-acs-retry-after` in ms (throttle default 1000; qpsCap default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// throttle: `x-acs-retry-after` as this exact text instead (e.g. `1e300`), as a misbehaving endpoint sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_text: Option<String>,
    /// latency: delay in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// dropConnection: `before` (default) or `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<DropWhen>,
    /// qpsCap: calls allowed per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps: Option<u32>,
}

/// The whole fault plan, as posted to `/_fake/faults`. An empty plan turns faults off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultPlan {
    /// Rules in the order they are checked.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// A fault plan that makes no sense; the message names the rule and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules[{index}].{field}: {problem}")]
pub struct FaultPlanError {
    /// Position of the rule.
    pub index: usize,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong and what to do.
    pub problem: String,
}

impl FaultRule {
    fn validate(&self, index: usize) -> Result<(), FaultPlanError> {
        let fail = |field, problem: &str| {
            Err(FaultPlanError {
                index,
                field,
                problem: problem.to_owned(),
            })
        };
        if let Some(action) = &self.action
            && Action::from_name(action).is_none()
        {
            return fail("action", "not one of the seven client-secret actions");
        }
        if self.next.is_some() && self.every_nth.is_some() {
            return fail("everyNth", "give either next or everyNth, not both");
        }
        if self.next == Some(0) {
            return fail("next", "must be at least 1");
        }
        if self.every_nth == Some(0) {
            return fail("everyNth", "must be at least 1");
        }
        let kind = self.kind;
        let only = |field: &'static str, set: bool, kinds: &[FaultKind]| {
            if set && !kinds.contains(&kind) {
                fail(field, "does not apply to this kind of fault")
            } else {
                Ok(())
            }
        };
        use FaultKind::*;
        only("status", self.status.is_some(), &[ServerError])?;
        only(
            "code",
            self.code.is_some(),
            &[Throttle, ServerError, QpsCap],
        )?;
        only(
            "retryAfterMs",
            self.retry_after_ms.is_some(),
            &[Throttle, QpsCap],
        )?;
        only(
            "retryAfterText",
            self.retry_after_text.is_some(),
            &[Throttle],
        )?;
        if self
            .retry_after_text
            .as_deref()
            .is_some_and(|text| axum::http::HeaderValue::from_str(text).is_err())
        {
            return fail("retryAfterText", "must be a valid header value");
        }
        only("latencyMs", self.latency_ms.is_some(), &[Latency, Drip])?;
        only("when", self.when.is_some(), &[DropConnection])?;
        only("qps", self.qps.is_some(), &[QpsCap])?;
        match kind {
            ServerError if self.status.is_some_and(|s| !(500..=599).contains(&s)) => {
                fail("status", "must be a 5xx status")
            }
            Latency if self.latency_ms.is_none() => fail("latencyMs", "required for latency"),
            QpsCap if self.qps.unwrap_or(0) == 0 => fail("qps", "required for qpsCap, at least 1"),
            QpsCap if self.next.is_some() || self.every_nth.is_some() => {
                fail("qps", "a qpsCap applies to every call; drop next/everyNth")
            }
            _ => Ok(()),
        }
    }

    fn targets(&self, action: &str) -> bool {
        self.action.as_deref().is_none_or(|a| a == action)
    }
}

impl FaultPlan {
    /// Checks every rule.
    pub fn validate(&self) -> Result<(), FaultPlanError> {
        self.rules
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| r.validate(i))
    }
}

/// What a fault turned the call into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// Answer with this error instead of handling the call.
    Error(ApiError),
    /// Close the connection without an answer.
    Drop(DropWhen),
    /// Never answer.
    Hang,
    /// 200, then a body of one byte every `interval_ms`, forever.
    Drip { interval_ms: u64 },
    /// 200, then a body that never ends.
    EndlessBody,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counters {
    /// Calls that reached the rule.
    seen: u64,
    /// Calls the rule fired on.
    fired: u64,
    /// qpsCap: the calls each account (AccessKey id) made in the last second. EIAM's flow control counts per
    /// account: two providers, or two operators, on one AccessKey share one cap.
    #[serde(skip)]
    recent_ms: HashMap<String, VecDeque<u64>>,
}

/// The active plan and how often each rule has fired.
#[derive(Debug, Clone, Default)]
pub struct FaultEngine {
    plan: FaultPlan,
    counters: Vec<Counters>,
}

/// A rule with its counters, for `GET /_fake/faults`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleReport {
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Calls that reached it.
    pub seen: u64,
    /// Calls it fired on.
    pub fired: u64,
}

impl FaultEngine {
    /// Replaces the plan (after validating it) and resets the counters.
    pub fn set(&mut self, plan: FaultPlan) -> Result<(), FaultPlanError> {
        plan.validate()?;
        self.counters = vec![Counters::default(); plan.rules.len()];
        self.plan = plan;
        Ok(())
    }

    /// The rules and their counters.
    pub fn report(&self) -> Vec<RuleReport> {
        self.plan
            .rules
            .iter()
            .zip(&self.counters)
            .map(|(rule, c)| RuleReport {
                rule: rule.clone(),
                seen: c.seen,
                fired: c.fired,
            })
            .collect()
    }

    /// Total delay of the latency rules that fire for this call.
    pub fn latency_ms(&mut self, action: &str) -> u64 {
        let mut total = 0;
        for (rule, counters) in self.plan.rules.iter().zip(self.counters.iter_mut()) {
            if rule.kind == FaultKind::Latency && rule.targets(action) && fires(rule, counters) {
                total += rule.latency_ms.unwrap_or(0);
            }
        }
        total
    }

    /// [`FaultEngine::decide_for`] a call of no particular account.
    #[cfg(test)]
    pub fn decide(&mut self, action: &str, monotonic_ms: u64) -> Option<(FaultKind, Injected)> {
        self.decide_for(action, "", monotonic_ms)
    }

    /// The fault, if any, for this call by `account` (its AccessKey id), with the kind of rule that fired.
    /// `monotonic_ms` is a steady clock for the QPS cap, which counts each account's calls apart.
    pub fn decide_for(
        &mut self,
        action: &str,
        account: &str,
        monotonic_ms: u64,
    ) -> Option<(FaultKind, Injected)> {
        for (rule, counters) in self.plan.rules.iter().zip(self.counters.iter_mut()) {
            if rule.kind == FaultKind::Latency || !rule.targets(action) {
                continue;
            }
            let fired = if rule.kind == FaultKind::QpsCap {
                counters.seen += 1;
                // Accounts that made no call in the last second hold nothing (the map follows the live ones).
                counters.recent_ms.retain(|_, recent| {
                    while recent
                        .front()
                        .is_some_and(|t| monotonic_ms.saturating_sub(*t) >= 1000)
                    {
                        recent.pop_front();
                    }
                    !recent.is_empty()
                });
                let recent = counters.recent_ms.entry(account.to_owned()).or_default();
                let limit = usize::try_from(rule.qps.unwrap_or(1)).unwrap_or(usize::MAX);
                if recent.len() >= limit {
                    counters.fired += 1;
                    true
                } else {
                    recent.push_back(monotonic_ms);
                    false
                }
            } else {
                fires(rule, counters)
            };
            if fired {
                return Some((rule.kind, injected(rule, counters.fired)));
            }
        }
        None
    }
}

fn fires(rule: &FaultRule, counters: &mut Counters) -> bool {
    counters.seen += 1;
    let fire = match (rule.next, rule.every_nth) {
        (Some(n), _) => counters.fired < n,
        (None, Some(n)) => counters.seen.is_multiple_of(n),
        (None, None) => true,
    };
    if fire {
        counters.fired += 1;
    }
    fire
}

/// The outcome of `rule`, which has now fired `fired` times.
fn injected(rule: &FaultRule, fired: u64) -> Injected {
    match rule.kind {
        FaultKind::Throttle => {
            let mut error = ApiError::bad_request(
                rule.code.clone().unwrap_or_else(|| "Throttling".into()),
                "Request was denied due to request throttling.",
            );
            match &rule.retry_after_text {
                Some(text) => error.retry_after_text = Some(text.clone()),
                None => error.retry_after_ms = Some(rule.retry_after_ms.unwrap_or(1000)),
            }
            Injected::Error(error)
        }
        FaultKind::Hang => Injected::Hang,
        FaultKind::Drip => Injected::Drip {
            interval_ms: rule.latency_ms.unwrap_or(100).max(1),
        },
        FaultKind::EndlessBody => Injected::EndlessBody,
        FaultKind::FreshCode => Injected::Error(ApiError::bad_request(
            format!("Nonsense.{fired}"),
            "An answer no documentation lists.",
        )),
        FaultKind::QpsCap => Injected::Error(
            ApiError::bad_request(
                rule.code
                    .clone()
                    .unwrap_or_else(|| "Throttling.User".into()),
                "Request was denied due to user flow control.",
            )
            .with_retry_after(rule.retry_after_ms),
        ),
        FaultKind::ServerError => {
            let status = rule.status.unwrap_or(503);
            let (default_code, message) = if status == 503 {
                (
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            } else {
                (
                    "InternalError",
                    "The request processing has failed due to some unknown error, exception or failure.",
                )
            };
            Injected::Error(ApiError::new(
                rule.code.clone().unwrap_or_else(|| default_code.into()),
                status,
                message,
            ))
        }
        FaultKind::DropConnection => Injected::Drop(rule.when.unwrap_or_default()),
        // Latency rules never decide an outcome; `decide` skips them.
        FaultKind::Latency => Injected::Drop(DropWhen::Before),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "CreateApplicationClientSecret";
    const LIST: &str = "ListApplicationClientSecrets";

    fn engine(json: &str) -> FaultEngine {
        let mut e = FaultEngine::default();
        e.set(serde_json::from_str(json).unwrap()).unwrap();
        e
    }

    fn code(i: Option<(FaultKind, Injected)>) -> Option<String> {
        match i.map(|(_, i)| i) {
            Some(Injected::Error(e)) => Some(e.code),
            Some(Injected::Drop(w)) => Some(format!("drop-{w:?}")),
            Some(other) => Some(format!("{other:?}")),
            None => None,
        }
    }

    #[test]
    fn a_hostile_endpoint_hangs_drips_streams_and_invents_codes() {
        let mut e = engine(
            r#"{"rules":[{"kind":"hang","next":1},{"kind":"drip","latencyMs":50,"next":1},
                {"kind":"endlessBody","next":1},{"kind":"freshCode","next":2},
                {"kind":"throttle","retryAfterText":"1e300","next":1}]}"#,
        );
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("Hang"));
        assert_eq!(
            code(e.decide(LIST, 0)).as_deref(),
            Some("Drip { interval_ms: 50 }")
        );
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("EndlessBody"));
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("Nonsense.1"));
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("Nonsense.2"));
        match e.decide(LIST, 0) {
            Some((FaultKind::Throttle, Injected::Error(err))) => {
                assert_eq!(err.retry_after_text.as_deref(), Some("1e300"));
                assert_eq!(err.retry_after_ms, None);
            }
            other => panic!("{other:?}"),
        }
        let plan: FaultPlan = serde_json::from_str(
            r#"{"rules":[{"kind":"throttle","retryAfterText":"bad\nvalue"}]}"#,
        )
        .unwrap();
        let err = FaultEngine::default().set(plan).unwrap_err().to_string();
        assert!(err.starts_with("rules[0].retryAfterText"), "{err}");
    }

    #[test]
    fn throttle_every_third_call_with_retry_after() {
        let mut e = engine(r#"{"rules":[{"kind":"throttle","everyNth":3,"retryAfterMs":250}]}"#);
        let out: Vec<_> = (0..6).map(|_| e.decide(LIST, 0)).collect();
        assert!(out[0].is_none() && out[1].is_none() && out[3].is_none() && out[4].is_none());
        match &out[2] {
            Some((FaultKind::Throttle, Injected::Error(err))) => {
                assert_eq!(
                    (err.code.as_str(), err.status, err.retry_after_ms),
                    ("Throttling", 400, Some(250))
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(out[5].is_some());
    }

    #[test]
    fn next_n_server_errors_then_recovery() {
        let mut e = engine(r#"{"rules":[{"kind":"serverError","status":500,"next":2}]}"#);
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("InternalError"));
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("InternalError"));
        assert_eq!(code(e.decide(LIST, 0)), None);
        let mut e = engine(r#"{"rules":[{"kind":"serverError"}]}"#);
        match e.decide(LIST, 0) {
            Some((_, Injected::Error(err))) => {
                assert_eq!((err.code.as_str(), err.status), ("ServiceUnavailable", 503))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_can_target_one_action() {
        let mut e = engine(
            r#"{"rules":[{"kind":"dropConnection","when":"after","action":"CreateApplicationClientSecret","next":1}]}"#,
        );
        assert_eq!(code(e.decide(LIST, 0)), None);
        assert_eq!(code(e.decide(CREATE, 0)).as_deref(), Some("drop-After"));
        assert_eq!(code(e.decide(CREATE, 0)), None);
    }

    #[test]
    fn qps_cap_admits_n_per_second() {
        let mut e = engine(r#"{"rules":[{"kind":"qpsCap","qps":2}]}"#);
        assert_eq!(code(e.decide(LIST, 0)), None);
        assert_eq!(code(e.decide(LIST, 10)), None);
        assert_eq!(code(e.decide(LIST, 20)).as_deref(), Some("Throttling.User"));
        assert_eq!(
            code(e.decide(LIST, 999)).as_deref(),
            Some("Throttling.User")
        );
        assert_eq!(code(e.decide(LIST, 1000)), None);
    }

    #[test]
    fn the_qps_cap_counts_each_account_apart() {
        let mut e = engine(r#"{"rules":[{"kind":"qpsCap","qps":1}]}"#);
        assert_eq!(code(e.decide_for(LIST, "LTAIa", 0)), None);
        assert_eq!(code(e.decide_for(LIST, "LTAIb", 1)), None);
        assert_eq!(
            code(e.decide_for(LIST, "LTAIa", 2)).as_deref(),
            Some("Throttling.User")
        );
        assert_eq!(code(e.decide_for(LIST, "LTAIa", 1000)), None);
    }

    #[test]
    fn latency_adds_up_and_does_not_decide() {
        let mut e = engine(
            r#"{"rules":[{"kind":"latency","latencyMs":100},{"kind":"latency","latencyMs":50,"action":"ListApplicationClientSecrets"}]}"#,
        );
        assert_eq!(e.latency_ms(LIST), 150);
        assert_eq!(e.latency_ms(CREATE), 100);
        assert_eq!(e.decide(LIST, 0), None);
    }

    #[test]
    fn first_firing_rule_decides_and_later_rules_do_not_count() {
        let mut e =
            engine(r#"{"rules":[{"kind":"throttle","next":1},{"kind":"serverError","next":1}]}"#);
        assert_eq!(code(e.decide(LIST, 0)).as_deref(), Some("Throttling"));
        assert_eq!(
            code(e.decide(LIST, 0)).as_deref(),
            Some("ServiceUnavailable")
        );
        assert_eq!(code(e.decide(LIST, 0)), None);
        let report = e.report();
        assert_eq!(
            (
                report[0].seen,
                report[0].fired,
                report[1].seen,
                report[1].fired
            ),
            (3, 1, 2, 1)
        );
    }

    #[test]
    fn invalid_plans_name_the_field() {
        let cases = [
            (r#"{"kind":"latency"}"#, "rules[0].latencyMs"),
            (r#"{"kind":"serverError","status":404}"#, "rules[0].status"),
            (
                r#"{"kind":"throttle","next":1,"everyNth":2}"#,
                "rules[0].everyNth",
            ),
            (r#"{"kind":"throttle","action":"Nope"}"#, "rules[0].action"),
            (r#"{"kind":"throttle","latencyMs":3}"#, "rules[0].latencyMs"),
            (r#"{"kind":"qpsCap"}"#, "rules[0].qps"),
        ];
        for (rule, field) in cases {
            let plan: FaultPlan =
                serde_json::from_str(&format!(r#"{{"rules":[{rule}]}}"#)).unwrap();
            let err = FaultEngine::default().set(plan).unwrap_err().to_string();
            assert!(err.starts_with(field), "{rule}: {err}");
        }
        assert!(
            serde_json::from_str::<FaultPlan>(r#"{"rules":[{"kind":"throttle","evryNth":2}]}"#)
                .is_err()
        );
    }
}
