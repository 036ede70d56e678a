//! EIAM's error body and the client's error type.
//!
//! `ErrorBody` is the JSON Alibaba Cloud returns with every 4xx/5xx; the fake EIAM serialises this exact type, so
//! both sides agree on the shape.

use serde::{Deserialize, Serialize};

/// The error body of an Alibaba Cloud OpenAPI response (eiam-api.md section 3).
///
/// Serialises with PascalCase keys; deserialisation also accepts the camelCase keys some gateways send (the
/// official SDK reads both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// Machine-readable error code, e.g. `Throttling.User`. Branch on this, not on the HTTP status.
    #[serde(default, alias = "code")]
    pub code: String,
    /// Human-readable explanation.
    #[serde(default, alias = "message")]
    pub message: String,
    /// The request id to quote to Alibaba Cloud support.
    #[serde(default, alias = "requestId")]
    pub request_id: String,
    /// The host that answered, e.g. `eiam.cn-hangzhou.aliyuncs.com`.
    #[serde(default, alias = "hostId", skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// A troubleshooting URL.
    #[serde(default, alias = "recommend", skip_serializing_if = "Option::is_none")]
    pub recommend: Option<String>,
    /// RAM denial details (`AuthAction`, `EncodedDiagnosticMessage`, ...), present on permission errors.
    #[serde(
        default,
        alias = "accessDeniedDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_denied_detail: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_decodes_pascal_case() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"RequestId":"6BE5","HostId":"eiam.cn-hangzhou.aliyuncs.com","Code":"Throttling.User",
                "Message":"Request was denied due to user flow control.","Recommend":"https://x",
                "AccessDeniedDetail":{"AuthAction":"eiam:ListApplicationClientSecrets"}}"#,
        )
        .unwrap();
        assert_eq!(body.code, "Throttling.User");
        assert_eq!(body.request_id, "6BE5");
        assert_eq!(
            body.host_id.as_deref(),
            Some("eiam.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(body.recommend.as_deref(), Some("https://x"));
        assert_eq!(
            body.access_denied_detail.unwrap()["AuthAction"],
            "eiam:ListApplicationClientSecrets"
        );
    }

    #[test]
    fn error_body_decodes_camel_case() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"requestId":"r1","code":"NoPermission","message":"denied","accessDeniedDetail":{"AuthAction":"a"}}"#,
        )
        .unwrap();
        assert_eq!(body.code, "NoPermission");
        assert_eq!(body.message, "denied");
        assert_eq!(body.request_id, "r1");
        assert!(body.access_denied_detail.is_some());
    }

    #[test]
    fn error_body_serialises_pascal_case_and_omits_absent_fields() {
        let body = ErrorBody {
            code: "SignatureDoesNotMatch".into(),
            message: "m".into(),
            request_id: "r".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"Code":"SignatureDoesNotMatch","Message":"m","RequestId":"r"}"#
        );
    }
}
