//! Request authentication as the Alibaba Cloud OpenAPI gateway does it: the common parameters (V1) or `x-acs-*`
//! headers (V3), the timestamp window, nonce replay, AccessKey and STS token checks, then the signature itself.
//!
//! Signatures are recomputed only with `crate::eiam::signer` (one signer in the codebase), over the request as it
//! was received: the method actually used, every query and form parameter, and for V3 the `SignedHeaders` the
//! client chose. Pure: the clock and the key/nonce stores are passed in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::keyring::{KeyRejection, Keyring};
use super::nonces::NonceCache;
use super::wire::{ApiError, BodyFormat};
use crate::eiam::signer;
use crate::eiam::types::{API_VERSION, Action};

/// Parameters of the V1 protocol itself, as opposed to the action's business parameters.
const V1_COMMON_PARAMS: [&str; 10] = [
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureNonce",
    "Timestamp",
    "SignatureMethod",
    "SignatureVersion",
    "Signature",
    "SecurityToken",
];

/// Headers a V3 request must carry and sign, besides any other `x-acs-*` it sends.
const V3_REQUIRED_HEADERS: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// The signature scheme of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// RPC `HMAC-SHA1` (`SignatureVersion=1.0`), the SDK's `signature_algorithm='v2'`.
    V1,
    /// `ACS3-HMAC-SHA256` in the `Authorization` header.
    V3,
}

impl SignatureVersion {
    /// `v1` or `v3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V3 => "v3",
        }
    }
}

/// A request as received, decoded but otherwise untouched.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method as received (`POST`, `GET`).
    pub method: String,
    /// Path as received (`/`).
    pub path: String,
    /// Query parameters, form-decoded (`+` is a space).
    pub query: BTreeMap<String, String>,
    /// `application/x-www-form-urlencoded` body parameters (empty for other bodies).
    pub form: BTreeMap<String, String>,
    /// Headers by lowercase name; repeated headers joined with `,`.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// Query and form parameters together (form wins on a clash): the V1 signing set and the V3 business set.
    pub fn all_params(&self) -> BTreeMap<String, String> {
        let mut params = self.query.clone();
        params.extend(self.form.iter().map(|(k, v)| (k.clone(), v.clone())));
        params
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What can be told about a request before authenticating it: scheme, claimed action, response format.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// V3 when an `Authorization` header is present, V1 otherwise.
    pub version: SignatureVersion,
    /// The claimed action (`Action` or `x-acs-action`), empty when absent.
    pub action: String,
    /// The format to answer in.
    pub format: BodyFormat,
    /// The claimed AccessKeyId, for the call log.
    pub access_key_id: Option<String>,
    /// Query and form parameters without credentials, for the call log.
    pub params: BTreeMap<String, String>,
}

/// Reads the envelope of a request. V1 answers in XML unless `Format` says JSON (EIAM's documented default).
pub fn envelope(request: &ReceivedRequest) -> Envelope {
    let params = request.all_params();
    if request.headers.contains_key("authorization") {
        let access_key_id = request
            .header("authorization")
            .and_then(|h| signer::V3Authorization::parse(h).ok())
            .map(|a| a.access_key_id);
        Envelope {
            version: SignatureVersion::V3,
            action: request
                .header("x-acs-action")
                .unwrap_or_default()
                .to_owned(),
            format: BodyFormat::Json,
            access_key_id,
            params: super::calls::recordable(&params),
        }
    } else {
        let format = match params.get("Format").map(|f| f.to_ascii_uppercase()) {
            Some(f) if f == "JSON" => BodyFormat::Json,
            _ => BodyFormat::Xml,
        };
        Envelope {
            version: SignatureVersion::V1,
            action: params.get("Action").cloned().unwrap_or_default(),
            format,
            access_key_id: params.get("AccessKeyId").cloned(),
            params: super::calls::recordable(&params),
        }
    }
}

/// A request that passed authentication.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The action to perform.
    pub action: Action,
    /// Its business parameters (PascalCase names).
    pub params: BTreeMap<String, String>,
    /// The AccessKeyId that signed it.
    pub access_key_id: String,
}

/// The checks' inputs that are not part of the request.
pub struct Verifier<'a> {
    /// Known AccessKeys.
    pub keyring: &'a Keyring,
    /// Nonces already accepted; the request's nonce is added on success.
    pub nonces: &'a mut NonceCache,
    /// Server time, UNIX ms.
    pub now_ms: i64,
    /// Accepted |timestamp − now|, ms.
    pub window_ms: i64,
}

impl Verifier<'_> {
    /// Authenticates a request in the gateway's order: API and version, format, signature method, timestamp,
    /// nonce, AccessKey, STS token, signature. The nonce is remembered only once the signature is verified.
    pub fn authenticate(
        &mut self,
        request: &ReceivedRequest,
        envelope: &Envelope,
    ) -> Result<Authenticated, ApiError> {
        match envelope.version {
            SignatureVersion::V1 => self.authenticate_v1(request),
            SignatureVersion::V3 => self.authenticate_v3(request),
        }
    }

    fn authenticate_v1(&mut self, request: &ReceivedRequest) -> Result<Authenticated, ApiError> {
        let params = request.all_params();
        let get = |name: &str| params.get(name).map(String::as_str);
        let require = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ApiError::missing(name))
        };

        let action = check_action(require("Action")?)?;
        check_version(require("Version")?)?;
        if let Some(format) = get("Format")
            && !format.eq_ignore_ascii_case("JSON")
            && !format.eq_ignore_ascii_case("XML")
        {
            return Err(ApiError::bad_request(
                "InvalidParameter.Format",
                format!("Specified parameter Format is not valid: {format:?}; use JSON or XML."),
            ));
        }
        let method = require("SignatureMethod")?;
        if method != "HMAC-SHA1" {
            return Err(ApiError::bad_request(
                "InvalidSignatureMethod",
                format!("Specified signature method {method:?} is not supported; use HMAC-SHA1."),
            ));
        }
        let version = require("SignatureVersion")?;
        if version != "1.0" {
            return Err(ApiError::bad_request(
                "InvalidSignatureVersion",
                format!("Specified signature version {version:?} is not supported; use 1.0."),
            ));
        }
        self.check_timestamp(require("Timestamp")?)?;
        let nonce = require("SignatureNonce")?;
        self.check_nonce(nonce)?;
        let access_key_id = require("AccessKeyId")?;
        let secret = self.key_secret(access_key_id, get("SecurityToken"))?;
        let given = require("Signature")?;

        let string_to_sign = signer::v1_string_to_sign(&request.method, &params);
        let expected = signer::v1_signature(&secret, &string_to_sign);
        if given != expected {
            return Err(signature_mismatch(&string_to_sign));
        }
        self.nonces.record(nonce, self.now_ms);
        let business = params
            .iter()
            .filter(|(k, _)| !V1_COMMON_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Authenticated {
            action,
            params: business,
            access_key_id: access_key_id.to_owned(),
        })
    }

    fn authenticate_v3(&mut self, request: &ReceivedRequest) -> Result<Authenticated, ApiError> {
        let authorization =
            signer::V3Authorization::parse(request.header("authorization").unwrap_or_default())
                .map_err(|e| {
                    ApiError::bad_request(
                        "IncompleteSignature",
                        format!("The request signature does not conform to Aliyun standards. {e}"),
                    )
                })?;
        let header = |name: &str| {
            request
                .header(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let action =
            check_action(header("x-acs-action").ok_or_else(|| ApiError::missing("Action"))?)?;
        check_version(header("x-acs-version").ok_or_else(|| ApiError::missing("Version"))?)?;

        for name in V3_REQUIRED_HEADERS {
            if header(name).is_none() {
                return Err(ApiError::bad_request(
                    "IncompleteSignature",
                    format!(
                        "The request signature does not conform to Aliyun standards: header {name} is required."
                    ),
                ));
            }
        }
        // The doc requires host, content-type (if present) and every x-acs-* header to be signed.
        let must_sign = request.headers.keys().filter(|name| {
            name.as_str() == "content-type"
                || (name.starts_with("x-acs-") && !V3_REQUIRED_HEADERS.contains(&name.as_str()))
        });
        for name in V3_REQUIRED_HEADERS
            .iter()
            .copied()
            .chain(must_sign.map(String::as_str))
        {
            if !authorization.signed_headers.iter().any(|h| h == name) {
                return Err(ApiError::bad_request(
                    "IncompleteSignature",
                    format!(
                        "The request signature does not conform to Aliyun standards: header {name} is not in SignedHeaders."
                    ),
                ));
            }
        }

        self.check_timestamp(header("x-acs-date").unwrap_or_default())?;
        let nonce = header("x-acs-signature-nonce").unwrap_or_default();
        self.check_nonce(nonce)?;
        let hashed_payload = header("x-acs-content-sha256").unwrap_or_default();
        let body_hash = signer::sha256_hex(&request.body);
        if hashed_payload != body_hash {
            return Err(ApiError::bad_request(
                "SignatureDoesNotMatch",
                format!(
                    "Specified x-acs-content-sha256 {hashed_payload} does not match the SHA-256 of the request body ({body_hash})."
                ),
            ));
        }
        if let Some(claimed) = header("x-acs-accesskey-id")
            && claimed != authorization.access_key_id
        {
            return Err(ApiError::bad_request(
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards: x-acs-accesskey-id differs from the Authorization Credential.",
            ));
        }
        let secret =
            self.key_secret(&authorization.access_key_id, header("x-acs-security-token"))?;

        let signed_headers: BTreeMap<String, String> = authorization
            .signed_headers
            .iter()
            .map(|name| (name.clone(), header(name).unwrap_or_default().to_owned()))
            .collect();
        let canonical = signer::v3_canonical_request(
            &request.method,
            &request.path,
            &request.query,
            &signed_headers,
            hashed_payload,
        );
        let string_to_sign = signer::v3_string_to_sign(&canonical);
        let expected = signer::v3_signature(&secret, &string_to_sign);
        if authorization.signature != expected {
            return Err(signature_mismatch(&string_to_sign));
        }
        self.nonces.record(nonce, self.now_ms);
        Ok(Authenticated {
            action,
            params: request.all_params(),
            access_key_id: authorization.access_key_id,
        })
    }

    fn check_timestamp(&self, value: &str) -> Result<(), ApiError> {
        let at_ms = parse_timestamp(value).ok_or_else(|| {
            ApiError::bad_request(
                "InvalidTimeStamp.Format",
                format!("Specified time stamp or date value {value:?} is not well formatted; use yyyy-MM-ddTHH:mm:ssZ in UTC."),
            )
        })?;
        if (self.now_ms - at_ms).abs() > self.window_ms {
            return Err(ApiError::bad_request(
                "InvalidTimeStamp.Expired",
                format!(
                    "Specified time stamp or date value is expired: {value} is more than {} minutes from the server time.",
                    self.window_ms / 60_000
                ),
            ));
        }
        Ok(())
    }

    fn check_nonce(&self, nonce: &str) -> Result<(), ApiError> {
        if nonce.is_empty() {
            return Err(ApiError::missing("SignatureNonce"));
        }
        if self.nonces.is_used(nonce) {
            return Err(ApiError::bad_request(
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        Ok(())
    }

    fn key_secret(&self, access_key_id: &str, token: Option<&str>) -> Result<String, ApiError> {
        self.keyring
            .authorize(access_key_id, token, self.now_ms)
            .map(|s| s.expose().to_owned())
            .map_err(|rejection| match rejection {
                KeyRejection::UnknownKey => ApiError::new(
                    "InvalidAccessKeyId.NotFound",
                    404,
                    "Specified access key is not found.",
                ),
                KeyRejection::MissingToken => ApiError::bad_request(
                    "MissingSecurityToken",
                    "SecurityToken is mandatory for this STS AccessKeyId.",
                ),
                KeyRejection::TokenMismatch => ApiError::bad_request(
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified security token does not match the access key.",
                ),
                KeyRejection::TokenMalformed => ApiError::bad_request(
                    "InvalidSecurityToken.Malformed",
                    "Specified security token is malformed.",
                ),
                KeyRejection::TokenExpired => ApiError::bad_request(
                    "InvalidSecurityToken.Expired",
                    "Specified security token has expired.",
                ),
            })
    }
}

fn check_action(name: &str) -> Result<Action, ApiError> {
    Action::from_name(name).ok_or_else(|| {
        ApiError::new(
            "InvalidAction.NotFound",
            404,
            format!("Specified api {name:?} is not found, please check your url and method."),
        )
    })
}

fn check_version(version: &str) -> Result<(), ApiError> {
    if version == API_VERSION {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "InvalidVersion",
            format!(
                "Specified parameter Version {version:?} is not valid; EIAM uses {API_VERSION}."
            ),
        ))
    }
}

fn signature_mismatch(string_to_sign: &str) -> ApiError {
    ApiError::bad_request(
        "SignatureDoesNotMatch",
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
        ),
    )
}

/// Parses exactly `yyyy-MM-ddTHH:mm:ssZ` (UTC) into UNIX ms.
pub fn parse_timestamp(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    value
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_must_have_the_exact_shape() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1000));
        for bad in [
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.000Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-13-01T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
