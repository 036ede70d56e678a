//! Builds a signed EIAM request (query and headers) from an action, its parameters, credentials, a time and a
//! nonce. Pure: the client supplies the clock and the nonce, so tests (and the fake EIAM's own tests) can build
//! requests with any timestamp or a repeated nonce.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use super::clock::format_acs_timestamp;
use super::credentials::Credentials;
use super::signer::{
    EMPTY_PAYLOAD_SHA256, V3Authorization, percent_encode, v1_signature, v1_string_to_sign,
    v3_canonical_request, v3_signature, v3_string_to_sign,
};

/// Every EIAM call is `POST /` with an empty body (eiam-api.md section 2).
pub const METHOD: &str = "POST";

/// Which signature algorithm to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignatureVersion {
    /// RPC HMAC-SHA1 (`SignatureVersion=1.0`): signature in the query.
    V1,
    /// ACS3-HMAC-SHA256: `x-acs-*` headers and an `Authorization` header. The official SDK's default.
    #[default]
    V3,
}

impl fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureVersion::V1 => "v1",
            SignatureVersion::V3 => "v3",
        })
    }
}

impl FromStr for SignatureVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "v1" | "1" | "1.0" | "hmac-sha1" => Ok(SignatureVersion::V1),
            "v3" | "3" | "acs3-hmac-sha256" => Ok(SignatureVersion::V3),
            other => Err(format!(
                "unknown signature version `{other}`: expected `v1` or `v3`"
            )),
        }
    }
}

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// API name, e.g. `CreateApplicationClientSecret`.
    pub action: &'a str,
    /// API version, e.g. `2021-12-01`.
    pub version: &'a str,
    /// Business parameters (PascalCase names), sent in the query.
    pub params: &'a BTreeMap<String, String>,
    /// The `host` header value the HTTP client will send (V3 signs it).
    pub host: &'a str,
    /// Signing time.
    pub timestamp: Timestamp,
    /// Anti-replay nonce; must be fresh for every attempt.
    pub nonce: &'a str,
}

/// A signed request: send `POST /?<query_string()>` with `headers` and an empty body. The HTTP client sets
/// `host` itself from the endpoint; it is not in `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// All query parameters, including the signature for V1.
    pub query: BTreeMap<String, String>,
    /// Extra headers (lowercase names): the `x-acs-*` headers and `authorization` for V3, none for V1.
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    /// The query string, RFC 3986 percent-encoded as the signers encode it.
    pub fn query_string(&self) -> String {
        encode_query(&self.query)
    }
}

/// `k=v&...` with keys and values percent-encoded, in key order.
pub fn encode_query(query: &BTreeMap<String, String>) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A fresh random nonce: 32 lowercase hex characters, like the official SDK's.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Signs `req` with `credentials`.
pub fn sign(
    version: SignatureVersion,
    req: &RequestToSign<'_>,
    credentials: &Credentials,
) -> SignedRequest {
    match version {
        SignatureVersion::V1 => sign_v1(req, credentials),
        SignatureVersion::V3 => sign_v3(req, credentials),
    }
}

fn sign_v1(req: &RequestToSign<'_>, credentials: &Credentials) -> SignedRequest {
    let mut query = req.params.clone();
    let common = [
        ("Action", req.action.to_owned()),
        ("Version", req.version.to_owned()),
        ("Format", "JSON".to_owned()),
        ("AccessKeyId", credentials.access_key_id.clone()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        ("SignatureVersion", "1.0".to_owned()),
        ("SignatureNonce", req.nonce.to_owned()),
        ("Timestamp", format_acs_timestamp(req.timestamp)),
    ];
    for (k, v) in common {
        query.insert(k.to_owned(), v);
    }
    if let Some(token) = &credentials.security_token {
        query.insert("SecurityToken".to_owned(), token.expose().to_owned());
    }
    let string_to_sign = v1_string_to_sign(METHOD, &query);
    let signature = v1_signature(credentials.access_key_secret.expose(), &string_to_sign);
    query.insert("Signature".to_owned(), signature);
    SignedRequest {
        query,
        headers: Vec::new(),
    }
}

fn sign_v3(req: &RequestToSign<'_>, credentials: &Credentials) -> SignedRequest {
    let mut signed: BTreeMap<String, String> = [
        ("host", req.host.to_owned()),
        ("x-acs-action", req.action.to_owned()),
        ("x-acs-version", req.version.to_owned()),
        ("x-acs-date", format_acs_timestamp(req.timestamp)),
        ("x-acs-signature-nonce", req.nonce.to_owned()),
        ("x-acs-content-sha256", EMPTY_PAYLOAD_SHA256.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(token) = &credentials.security_token {
        signed.insert("x-acs-security-token".to_owned(), token.expose().to_owned());
        signed.insert(
            "x-acs-accesskey-id".to_owned(),
            credentials.access_key_id.clone(),
        );
    }
    let canonical = v3_canonical_request(METHOD, "/", req.params, &signed, EMPTY_PAYLOAD_SHA256);
    let signature = v3_signature(
        credentials.access_key_secret.expose(),
        &v3_string_to_sign(&canonical),
    );
    let authorization = V3Authorization {
        access_key_id: credentials.access_key_id.clone(),
        signed_headers: signed.keys().cloned().collect(),
        signature,
    };
    let mut headers: Vec<(String, String)> =
        signed.into_iter().filter(|(k, _)| k != "host").collect();
    headers.push(("authorization".to_owned(), authorization.render()));
    SignedRequest {
        query: req.params.clone(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eiam::secret::SecretString;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKID".into(),
            access_key_secret: SecretString::new("secret"),
            security_token: token.map(SecretString::new),
        }
    }

    fn params() -> BTreeMap<String, String> {
        [
            ("InstanceId", "idaas_1"),
            ("ApplicationId", "app_1"),
            ("ExpirationTime", "1735530123762"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn to_sign<'a>(params: &'a BTreeMap<String, String>) -> RequestToSign<'a> {
        RequestToSign {
            action: "CreateApplicationClientSecret",
            version: "2021-12-01",
            params,
            host: "127.0.0.1:8080",
            timestamp: "2026-11-26T15:27:06Z".parse().unwrap(),
            nonce: "0123456789abcdef0123456789abcdef",
        }
    }

    #[test]
    fn v1_puts_common_parameters_and_a_verifiable_signature_in_the_query() {
        let p = params();
        let signed = sign(SignatureVersion::V1, &to_sign(&p), &creds(None));
        let q = &signed.query;
        assert_eq!(q["Action"], "CreateApplicationClientSecret");
        assert_eq!(q["Version"], "2021-12-01");
        assert_eq!(q["Format"], "JSON");
        assert_eq!(q["SignatureMethod"], "HMAC-SHA1");
        assert_eq!(q["SignatureVersion"], "1.0");
        assert_eq!(q["Timestamp"], "2026-11-26T15:27:06Z");
        assert_eq!(q["InstanceId"], "idaas_1");
        assert!(!q.contains_key("SecurityToken"));
        assert!(signed.headers.is_empty());
        // Verify the way a server does: recompute over everything but Signature.
        let expected = v1_signature("secret", &v1_string_to_sign("POST", q));
        assert_eq!(q["Signature"], expected);
        assert!(
            signed
                .query_string()
                .contains("Timestamp=2026-11-26T15%3A27%3A06Z")
        );
    }

    #[test]
    fn v1_sts_signs_the_security_token() {
        let p = params();
        let signed = sign(SignatureVersion::V1, &to_sign(&p), &creds(Some("tok")));
        assert_eq!(signed.query["SecurityToken"], "tok");
        let mut without = signed.query.clone();
        without.remove("SecurityToken");
        assert_ne!(
            signed.query["Signature"],
            v1_signature("secret", &v1_string_to_sign("POST", &without))
        );
    }

    fn header<'a>(signed: &'a SignedRequest, name: &str) -> &'a str {
        signed
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn v3_signs_the_documented_headers_and_keeps_parameters_in_the_query() {
        let p = params();
        let signed = sign(SignatureVersion::V3, &to_sign(&p), &creds(None));
        assert_eq!(signed.query, p);
        assert_eq!(
            header(&signed, "x-acs-action"),
            "CreateApplicationClientSecret"
        );
        assert_eq!(header(&signed, "x-acs-date"), "2026-11-26T15:27:06Z");
        assert_eq!(
            header(&signed, "x-acs-content-sha256"),
            EMPTY_PAYLOAD_SHA256
        );
        let auth = V3Authorization::parse(header(&signed, "authorization")).unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(
            auth.signed_headers.join(";"),
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        // Verify as a server does: rebuild the signed headers from what was received plus host.
        let mut received: BTreeMap<String, String> = signed.headers.iter().cloned().collect();
        received.insert("host".into(), "127.0.0.1:8080".into());
        let signed_map: BTreeMap<String, String> = auth
            .signed_headers
            .iter()
            .map(|h| (h.clone(), received[h].clone()))
            .collect();
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &signed.query,
            &signed_map,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            auth.signature,
            v3_signature("secret", &v3_string_to_sign(&canonical))
        );
    }

    #[test]
    fn v3_sts_adds_and_signs_token_and_accesskey_headers() {
        let p = params();
        let signed = sign(SignatureVersion::V3, &to_sign(&p), &creds(Some("tok")));
        assert_eq!(header(&signed, "x-acs-security-token"), "tok");
        assert_eq!(header(&signed, "x-acs-accesskey-id"), "AKID");
        let auth = V3Authorization::parse(header(&signed, "authorization")).unwrap();
        assert!(
            auth.signed_headers
                .contains(&"x-acs-security-token".to_owned())
        );
        assert!(
            auth.signed_headers
                .contains(&"x-acs-accesskey-id".to_owned())
        );
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let a = new_nonce();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_nonce());
    }

    #[test]
    fn signature_version_parses() {
        assert_eq!(
            "v1".parse::<SignatureVersion>().unwrap(),
            SignatureVersion::V1
        );
        assert_eq!(
            "V3".parse::<SignatureVersion>().unwrap(),
            SignatureVersion::V3
        );
        assert!("v2".parse::<SignatureVersion>().unwrap_err().contains("v2"));
    }
}
