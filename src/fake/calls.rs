//! The call log: every API call the fake answered (or dropped), for tests to assert on.
//!
//! Parameters are recorded without `Signature` and `SecurityToken`; no response body is kept, so no client secret
//! ever lands here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Parameters never recorded: they are credentials, not data.
pub const UNRECORDED_PARAMS: [&str; 2] = ["Signature", "SecurityToken"];

/// One recorded API call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedCall {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Server time of arrival, RFC 3339.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// The action name as sent (may be unknown or empty).
    pub action: String,
    /// `v1`, `v3`, or `none` when the request carried no recognisable signature.
    pub signature_version: String,
    /// The AccessKeyId used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Query and form parameters, without credentials.
    pub params: BTreeMap<String, String>,
    /// `OK`, an error `Code`, or `ConnectionDropped`.
    pub outcome: String,
    /// HTTP status sent (0 when the connection was dropped).
    pub status: u16,
    /// The RequestId sent (or that would have been sent).
    pub request_id: String,
    /// The injected fault, if one decided the outcome, e.g. `throttle`, `dropConnection(after)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// All calls since start or the last reset, in order.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Vec<RecordedCall>,
}

impl CallLog {
    /// The sequence number the next call gets.
    pub fn next_seq(&self) -> u64 {
        self.calls.len() as u64 + 1
    }

    /// Appends a call.
    pub fn push(&mut self, call: RecordedCall) {
        self.calls.push(call);
    }

    /// Every call, optionally only those of one action.
    pub fn list(&self, action: Option<&str>) -> Vec<RecordedCall> {
        self.calls
            .iter()
            .filter(|c| action.is_none_or(|a| c.action == a))
            .cloned()
            .collect()
    }
}

/// Copies parameters without the ones that are credentials.
pub fn recordable(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(k, _)| !UNRECORDED_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
