//! What goes back on the wire: EIAM error values, request ids, and rendering of JSON and XML bodies.
//!
//! Errors are serialised through the client's own `ErrorBody`, so both sides agree on the shape; success bodies
//! are built here from the documented examples, independently of the client's types, so that a decoding bug in
//! the client is not mirrored by the fake.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rand::Rng;
use serde_json::Value;

use crate::eiam::error::ErrorBody;

/// Response header carrying the request id, as the Alibaba Cloud gateway sends it.
pub const REQUEST_ID_HEADER: &str = "x-acs-request-id";
/// Response header with the suggested wait in milliseconds on throttling; the official SDK honours it.
pub const RETRY_AFTER_HEADER: &str = "x-acs-retry-after";

/// An EIAM error: `Code`, HTTP status and `Message`, plus an optional retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The `Code` of the body, e.g. `SignatureDoesNotMatch`.
    pub code: String,
    /// The HTTP status.
    pub status: u16,
    /// The `Message` of the body.
    pub message: String,
    /// `x-acs-retry-after` in milliseconds, for throttling.
    pub retry_after_ms: Option<u64>,
    /// `x-acs-retry-after` sent as this exact text instead (a misbehaving endpoint's `1e300`, say).
    pub retry_after_text: Option<String>,
}

impl ApiError {
    /// An error with the given code, status and message.
    pub fn new(code: impl Into<String>, status: u16, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            status,
            message: message.into(),
            retry_after_ms: None,
            retry_after_text: None,
        }
    }

    /// A 400 error.
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, 400, message)
    }

    /// `Missing{Name}` for a required parameter that was not sent.
    pub fn missing(name: &str) -> Self {
        Self::bad_request(
            format!("Missing{name}"),
            format!("{name} is mandatory for this action."),
        )
    }

    /// Adds an `x-acs-retry-after` hint.
    pub fn with_retry_after(mut self, retry_after_ms: Option<u64>) -> Self {
        self.retry_after_ms = retry_after_ms;
        self
    }
}

/// The body format the caller asked for: V1 `Format` (default XML), V3 always JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`
    Json,
    /// `text/xml`
    Xml,
}

/// A fresh request id shaped like Alibaba's: uppercase hex `8-4-4-4-12`.
pub fn new_request_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        rng.random::<u32>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u16>(),
        rng.random::<u64>() & 0xFFFF_FFFF_FFFF
    )
}

/// A rendered response: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers (content type, request id, retry hint).
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl axum::response::IntoResponse for Rendered {
    fn into_response(self) -> axum::response::Response {
        (self.status, self.headers, self.body).into_response()
    }
}

fn base_headers(format: BodyFormat, request_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let content_type = match format {
        BodyFormat::Json => "application/json;charset=utf-8",
        BodyFormat::Xml => "text/xml;charset=utf-8",
    };
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    headers
}

/// Renders a success body with `RequestId` added to `fields`. `root` names the XML root element.
pub fn render_success(format: BodyFormat, request_id: &str, root: &str, fields: Value) -> Rendered {
    let mut object = serde_json::Map::new();
    object.insert("RequestId".into(), Value::String(request_id.to_owned()));
    if let Value::Object(rest) = fields {
        object.extend(rest);
    }
    let value = Value::Object(object);
    Rendered {
        status: StatusCode::OK,
        headers: base_headers(format, request_id),
        body: match format {
            BodyFormat::Json => value.to_string().into_bytes(),
            BodyFormat::Xml => xml_document(root, &value).into_bytes(),
        },
    }
}

/// Renders an error through `ErrorBody` (JSON) or as Alibaba's `<Error>` XML document.
pub fn render_error(
    format: BodyFormat,
    request_id: &str,
    host_id: &str,
    error: &ApiError,
) -> Rendered {
    let body = ErrorBody {
        code: error.code.clone(),
        message: error.message.clone(),
        request_id: request_id.to_owned(),
        host_id: Some(host_id.to_owned()),
        recommend: Some(format!(
            "https://api.aliyun.com/troubleshoot?q={}&product=Eiam&requestId={request_id}",
            error.code
        )),
        access_denied_detail: None,
    };
    let value = serde_json::to_value(&body).unwrap_or(Value::Null);
    let mut headers = base_headers(format, request_id);
    if let Some(ms) = error.retry_after_ms {
        headers.insert(
            HeaderName::from_static(RETRY_AFTER_HEADER),
            HeaderValue::from(ms),
        );
    }
    if let Some(value) = error
        .retry_after_text
        .as_deref()
        .and_then(|text| HeaderValue::from_str(text).ok())
    {
        headers.insert(HeaderName::from_static(RETRY_AFTER_HEADER), value);
    }
    Rendered {
        status: StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers,
        body: match format {
            BodyFormat::Json => value.to_string().into_bytes(),
            BodyFormat::Xml => xml_document("Error", &value).into_bytes(),
        },
    }
}

/// `<?xml ...?><root>...</root>`: objects become child elements, arrays repeat their element.
fn xml_document(root: &str, value: &Value) -> String {
    let mut out = String::from("<?xml version='1.0' encoding='UTF-8'?>");
    xml_element(&mut out, root, value);
    out
}

fn xml_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                xml_element(out, name, item);
            }
        }
        Value::Object(fields) => {
            out.push_str(&format!("<{name}>"));
            for (key, child) in fields {
                xml_element(out, key, child);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uppercase_uuid_shaped_and_fresh() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let lens: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12]);
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn json_error_uses_error_body() {
        let e = ApiError::bad_request(
            "Throttling.User",
            "Request was denied due to user flow control.",
        )
        .with_retry_after(Some(1500));
        let r = render_error(BodyFormat::Json, "RID", "eiam.test", &e);
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.headers[RETRY_AFTER_HEADER], "1500");
        let body: ErrorBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.code, "Throttling.User");
        assert_eq!(body.request_id, "RID");
        assert_eq!(body.host_id.as_deref(), Some("eiam.test"));
    }

    #[test]
    fn xml_error_is_an_error_document() {
        let r = render_error(
            BodyFormat::Xml,
            "RID",
            "h",
            &ApiError::missing("InstanceId"),
        );
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.starts_with("<?xml"), "{text}");
        assert!(
            text.contains("<Error>") && text.contains("<Code>MissingInstanceId</Code>"),
            "{text}"
        );
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }

    #[test]
    fn xml_success_repeats_array_elements_and_escapes() {
        let r = render_success(
            BodyFormat::Xml,
            "RID",
            "ListResponse",
            serde_json::json!({"Items": [{"A": "x<y"}, {"A": 2}]}),
        );
        let text = String::from_utf8(r.body).unwrap();
        assert!(
            text.contains("?><ListResponse><") && text.ends_with("</ListResponse>"),
            "{text}"
        );
        assert!(text.contains("<RequestId>RID</RequestId>"), "{text}");
        assert!(
            text.contains("<Items><A>x&lt;y</A></Items><Items><A>2</A></Items>"),
            "{text}"
        );
    }
}
