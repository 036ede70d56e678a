//! Pure request signing for the Alibaba Cloud OpenAPI: V1 RPC HMAC-SHA1 and V3 ACS3-HMAC-SHA256.
//!
//! No I/O and no clock: callers pass every input (timestamp, nonce, headers) so that the same functions sign in the
//! client and verify in the fake EIAM, and the published test vectors (eiam-api.md section 4.3) can be reproduced
//! byte for byte.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The V3 algorithm name, first token of the `Authorization` header and first line of the string to sign.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Hex SHA-256 of an empty body: the `x-acs-content-sha256` value of every EIAM request (the body is empty).
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A malformed V3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The header does not start with `ACS3-HMAC-SHA256 `.
    #[error(
        "Authorization header does not use the {V3_ALGORITHM} algorithm: expected `{V3_ALGORITHM} Credential=...,SignedHeaders=...,Signature=...`"
    )]
    UnsupportedAlgorithm,
    /// A required component (`Credential`, `SignedHeaders` or `Signature`) is missing or empty.
    #[error(
        "Authorization header is missing `{0}=`: expected `{V3_ALGORITHM} Credential=...,SignedHeaders=...,Signature=...`"
    )]
    MissingComponent(&'static str),
    /// A component is not of the form `Name=value`.
    #[error("Authorization header component `{0}` is not of the form Name=value")]
    MalformedComponent(String),
}

/// Percent-encodes `s` as the Alibaba Cloud signers do (RFC 3986 over UTF-8 bytes).
///
/// `A-Z a-z 0-9 - _ . ~` are kept; every other byte becomes `%XY` with uppercase hex, so a space is `%20` (never
/// `+`), `*` is `%2A`, `/` is `%2F`.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// `k1=v1&k2=v2...` over parameters sorted by key, keys and values percent-encoded; `Signature` is skipped because
/// it is the output, not an input.
fn v1_canonicalized_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// V1 `StringToSign`: `METHOD&%2F&percentEncode(CanonicalizedQueryString)`.
///
/// `params` is every request parameter (common and business); a `Signature` entry is ignored. The method is part
/// of the string, so pass the method actually sent.
pub fn v1_string_to_sign(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{}&{}&{}",
        method,
        percent_encode("/"),
        percent_encode(&v1_canonicalized_query(params))
    )
}

/// V1 signature: Base64(HMAC-SHA1(key = `access_key_secret + "&"`, `string_to_sign`)).
pub fn v1_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    let key = format!("{access_key_secret}&");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// V3 `CanonicalRequest`:
/// `METHOD\nCanonicalURI\nCanonicalQueryString\nCanonicalHeaders\nSignedHeaders\nHashedRequestPayload`.
///
/// `signed_headers` maps lowercase header names to their values (trimmed here); it is exactly the set of headers
/// that are signed, so a verifier passes the headers named in the received `SignedHeaders`.
pub fn v3_canonical_request(
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    signed_headers: &BTreeMap<String, String>,
    hashed_payload: &str,
) -> String {
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_headers: String = signed_headers
        .iter()
        .map(|(name, value)| format!("{}:{}\n", name.to_ascii_lowercase(), value.trim()))
        .collect();
    let signed_header_names = signed_headers
        .keys()
        .map(|k| k.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(";");
    format!(
        "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_header_names}\n{hashed_payload}"
    )
}

/// V3 `StringToSign`: `"ACS3-HMAC-SHA256\n" + hex(SHA256(canonical_request))`.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// V3 signature: hex(HMAC-SHA256(key = `access_key_secret` (no `&`), `string_to_sign`)).
pub fn v3_signature(access_key_secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(access_key_secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The parts of a V3 `Authorization` header:
/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<h1;h2>,Signature=<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    /// The AccessKey ID (`Credential=`).
    pub access_key_id: String,
    /// Lowercase signed header names, in the order given (`SignedHeaders=`).
    pub signed_headers: Vec<String>,
    /// Lowercase hex signature (`Signature=`).
    pub signature: String,
}

impl V3Authorization {
    /// Parses an `Authorization` header value. Whitespace around components is tolerated; the order of the
    /// components is not significant.
    pub fn parse(header: &str) -> Result<Self, SignerError> {
        let rest = header
            .trim()
            .strip_prefix(V3_ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or(SignerError::UnsupportedAlgorithm)?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for component in rest.split(',') {
            let component = component.trim();
            let (name, value) = component
                .split_once('=')
                .ok_or_else(|| SignerError::MalformedComponent(component.to_owned()))?;
            match name.trim() {
                "Credential" => credential = Some(value.trim().to_owned()),
                "SignedHeaders" => signed_headers = Some(value.trim().to_owned()),
                "Signature" => signature = Some(value.trim().to_owned()),
                // Unknown components are ignored, as a forward-compatible verifier should.
                _ => {}
            }
        }
        let access_key_id = credential
            .filter(|c| !c.is_empty())
            .ok_or(SignerError::MissingComponent("Credential"))?;
        let signed_headers = signed_headers
            .filter(|h| !h.is_empty())
            .ok_or(SignerError::MissingComponent("SignedHeaders"))?
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let signature = signature
            .filter(|s| !s.is_empty())
            .ok_or(SignerError::MissingComponent("Signature"))?;
        Ok(Self {
            access_key_id,
            signed_headers,
            signature,
        })
    }

    /// Renders the header value.
    pub fn render(&self) -> String {
        format!(
            "{V3_ALGORITHM} Credential={},SignedHeaders={},Signature={}",
            self.access_key_id,
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn v1_a_params() -> BTreeMap<String, String> {
        params(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeDedicatedHosts"),
            ("Format", "JSON"),
            ("RegionId", "cn-beijing"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2023-03-13T08:34:30Z"),
            ("Version", "2014-05-26"),
        ])
    }

    #[test]
    fn v1_a_published_string_to_sign_and_signature() {
        let sts = v1_string_to_sign("GET", &v1_a_params());
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON%26RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dedb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0%26Timestamp%3D2023-03-13T08%253A34%253A30Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature("testsecret", &sts),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
    }

    #[test]
    fn v1_b_published_ecs_signature() {
        let p = params(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        let sts = v1_string_to_sign("GET", &p);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v1_signature("testsecret", &sts),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn v1_c_post_changes_the_signature() {
        let sts = v1_string_to_sign("POST", &v1_a_params());
        assert!(sts.starts_with("POST&%2F&AccessKeyId%3Dtestid%26"));
        assert_eq!(
            v1_signature("testsecret", &sts),
            "ZvQ9xGiFnquSJRvj+WE6kdSpTwU="
        );
    }

    #[test]
    fn v1_string_to_sign_ignores_a_signature_parameter() {
        let mut p = v1_a_params();
        p.insert("Signature".into(), "whatever".into());
        assert_eq!(
            v1_string_to_sign("GET", &p),
            v1_string_to_sign("GET", &v1_a_params())
        );
    }

    #[test]
    fn v1_signature_depends_on_the_secret() {
        let sts = v1_string_to_sign("GET", &v1_a_params());
        assert_ne!(
            v1_signature("testsecreT", &sts),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
    }

    fn v3_vector_headers() -> BTreeMap<String, String> {
        params(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", EMPTY_PAYLOAD_SHA256),
        ])
    }

    fn v3_vector_query() -> BTreeMap<String, String> {
        params(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ])
    }

    #[test]
    fn v3_published_hashed_canonical_request_and_authorization() {
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &v3_vector_query(),
            &v3_vector_headers(),
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            canonical,
            "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
             host:ecs.cn-shanghai.aliyuncs.com\n\
             x-acs-action:RunInstances\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2023-10-26T10:22:32Z\n\
             x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
             x-acs-version:2014-05-26\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sts = v3_string_to_sign(&canonical);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let signature = v3_signature("YourAccessKeySecret", &sts);
        assert_eq!(
            signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        let auth = V3Authorization {
            access_key_id: "YourAccessKeyId".into(),
            signed_headers: v3_vector_headers().keys().cloned().collect(),
            signature,
        };
        assert_eq!(
            auth.render(),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_header_values_are_trimmed_and_names_lowercased() {
        let mut headers = BTreeMap::new();
        for (k, v) in v3_vector_headers() {
            headers.insert(k, format!("  {v} "));
        }
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &v3_vector_query(),
            &headers,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
    }

    #[test]
    fn v3_empty_query_and_empty_value() {
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &BTreeMap::new(),
            &params(&[("host", "h")]),
            "x",
        );
        assert_eq!(canonical, "POST\n/\n\nhost:h\n\nhost\nx");
        let canonical = v3_canonical_request(
            "POST",
            "/",
            &params(&[("A", "")]),
            &params(&[("host", "h")]),
            "x",
        );
        assert!(canonical.starts_with("POST\n/\nA=\nhost:h\n"));
    }

    #[test]
    fn empty_payload_constant_is_the_sha256_of_nothing() {
        assert_eq!(sha256_hex(b""), EMPTY_PAYLOAD_SHA256);
    }

    #[test]
    fn percent_encoding_edge_cases() {
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_encode("*"), "%2A");
        assert_eq!(percent_encode("~"), "~");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode(":"), "%3A");
        assert_eq!(percent_encode("+"), "%2B");
        assert_eq!(percent_encode("="), "%3D");
        assert_eq!(percent_encode("&"), "%26");
        assert_eq!(percent_encode("%"), "%25");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        // Non-ASCII: each UTF-8 byte is encoded, uppercase hex.
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("密钥"), "%E5%AF%86%E9%92%A5");
        assert_eq!(percent_encode("😀"), "%F0%9F%98%80");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn v1_string_to_sign_double_encodes_special_characters() {
        let p = params(&[("A", "x y*~/é")]);
        // Inner: A=x%20y%2A~%2F%C3%A9 ; outer encodes '=' and '%' again.
        assert_eq!(
            v1_string_to_sign("POST", &p),
            "POST&%2F&A%3Dx%2520y%252A~%252F%25C3%25A9"
        );
    }

    #[test]
    fn authorization_parse_round_trips() {
        let header =
            "ACS3-HMAC-SHA256 Credential=AKID,SignedHeaders=host;x-acs-action,Signature=abc123";
        let auth = V3Authorization::parse(header).unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert_eq!(auth.signed_headers, vec!["host", "x-acs-action"]);
        assert_eq!(auth.signature, "abc123");
        assert_eq!(auth.render(), header);
        // Whitespace after commas and a different order are accepted.
        let spaced =
            "ACS3-HMAC-SHA256 Signature=abc123, Credential=AKID, SignedHeaders=host;x-acs-action";
        assert_eq!(V3Authorization::parse(spaced).unwrap(), auth);
    }

    #[test]
    fn authorization_parse_rejects_malformed_headers() {
        assert_eq!(
            V3Authorization::parse("HMAC-SHA256 Credential=a,SignedHeaders=h,Signature=s"),
            Err(SignerError::UnsupportedAlgorithm)
        );
        assert_eq!(
            V3Authorization::parse("ACS3-HMAC-SHA256X Credential=a,SignedHeaders=h,Signature=s"),
            Err(SignerError::UnsupportedAlgorithm)
        );
        assert_eq!(
            V3Authorization::parse("ACS3-HMAC-SHA256 Credential=a,SignedHeaders=h"),
            Err(SignerError::MissingComponent("Signature"))
        );
        assert_eq!(
            V3Authorization::parse("ACS3-HMAC-SHA256 Credential=,SignedHeaders=h,Signature=s"),
            Err(SignerError::MissingComponent("Credential"))
        );
        assert!(matches!(
            V3Authorization::parse("ACS3-HMAC-SHA256 Credential=a,garbage,Signature=s"),
            Err(SignerError::MalformedComponent(_))
        ));
    }
}
