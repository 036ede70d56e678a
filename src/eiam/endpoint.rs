//! Where EIAM (or STS) is reached: a region's public endpoint or an explicit URL, HTTPS unless the host is loopback.
//!
//! Plain HTTP would put signed requests and clear client secrets on the wire, so it is only accepted for
//! loopback hosts, which is where the fake EIAM runs in tests.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

/// An endpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The region id has characters a region id never has.
    #[error(
        "invalid region `{region}`: expected a region id such as `cn-hangzhou` (lowercase letters, digits, `-`)"
    )]
    InvalidRegion {
        /// The rejected region id.
        region: String,
    },
    /// The URL does not parse.
    #[error(
        "invalid endpoint `{endpoint}`: {reason}; expected e.g. `https://eiam.cn-hangzhou.aliyuncs.com`"
    )]
    InvalidUrl {
        /// The rejected endpoint.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// `http://` to a host that is not loopback.
    #[error(
        "endpoint `{endpoint}` uses plain http to a non-loopback host: use https (http is only allowed for 127.0.0.0/8, ::1 and localhost)"
    )]
    InsecureScheme {
        /// The rejected endpoint.
        endpoint: String,
    },
}

/// A validated HTTPS (or loopback HTTP) base URL with no path, query or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
}

impl Endpoint {
    /// The public EIAM endpoint of a region: `https://eiam.<region>.aliyuncs.com`.
    pub fn from_region(region: &str) -> Result<Self, EndpointError> {
        Self::for_service("eiam", region)
    }

    /// `https://<service>.<region>.aliyuncs.com`, e.g. `sts.cn-hangzhou.aliyuncs.com`.
    pub fn for_service(service: &str, region: &str) -> Result<Self, EndpointError> {
        let valid = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !region.starts_with('-')
            && !region.ends_with('-');
        if !valid {
            return Err(EndpointError::InvalidRegion {
                region: region.to_owned(),
            });
        }
        Self::parse(&format!("https://{service}.{region}.aliyuncs.com"))
    }

    /// Parses an explicit endpoint. A bare host (`eiam-cn.vpc-proxy.aliyuncs.com`) means HTTPS. `http://` is
    /// accepted only for loopback hosts. A path other than `/`, a query, a fragment or user info is rejected.
    pub fn parse(endpoint: &str) -> Result<Self, EndpointError> {
        let trimmed = endpoint.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let invalid = |reason: &str| EndpointError::InvalidUrl {
            endpoint: endpoint.to_owned(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        if url.host().is_none() {
            return Err(invalid("it has no host"));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(invalid("it must not have a path"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("it must not carry user info"));
        }
        match url.scheme() {
            "https" => {}
            "http" if url.host().is_some_and(|h| is_loopback(&h)) => {}
            "http" => {
                return Err(EndpointError::InsecureScheme {
                    endpoint: endpoint.to_owned(),
                });
            }
            other => return Err(invalid(&format!("scheme `{other}` is not http or https"))),
        }
        Ok(Self { url })
    }

    /// Like [`Endpoint::parse`] but also accepts plain HTTP to any host. Only for the ECS metadata service, which
    /// is link-local and HTTP by design.
    pub fn parse_allowing_http(endpoint: &str) -> Result<Self, EndpointError> {
        match Self::parse(endpoint) {
            Err(EndpointError::InsecureScheme { .. }) => {
                let url = Url::parse(endpoint.trim()).map_err(|e| EndpointError::InvalidUrl {
                    endpoint: endpoint.to_owned(),
                    reason: e.to_string(),
                })?;
                Ok(Self { url })
            }
            other => other,
        }
    }

    /// The base URL (path `/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The `host` header value a client sends for this endpoint: the host, plus `:port` when the port is not the
    /// scheme's default. This is what V3 signs as `host`.
    pub fn host_header(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// Whether the host is loopback.
    pub fn is_loopback(&self) -> bool {
        self.url.host().is_some_and(|h| is_loopback(&h))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(name) => is_loopback_host(name),
    }
}

/// Whether `host` (a name or an IP literal, brackets allowed) is loopback: 127.0.0.0/8, `::1` or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_gives_the_public_endpoint() {
        let e = Endpoint::from_region("cn-hangzhou").unwrap();
        assert_eq!(e.url().as_str(), "https://eiam.cn-hangzhou.aliyuncs.com/");
        assert_eq!(e.host_header(), "eiam.cn-hangzhou.aliyuncs.com");
        assert_eq!(e.to_string(), "https://eiam.cn-hangzhou.aliyuncs.com");
        assert!(!e.is_loopback());
    }

    #[test]
    fn bad_regions_are_rejected() {
        for r in ["", "cn hangzhou", "CN-HANGZHOU", "evil.com/x", "-cn"] {
            assert!(
                matches!(
                    Endpoint::from_region(r),
                    Err(EndpointError::InvalidRegion { .. })
                ),
                "{r}"
            );
        }
    }

    #[test]
    fn explicit_https_and_bare_hosts() {
        let e = Endpoint::parse("eiam-cn.vpc-proxy.aliyuncs.com").unwrap();
        assert_eq!(e.url().as_str(), "https://eiam-cn.vpc-proxy.aliyuncs.com/");
        let e = Endpoint::parse("https://eiam.example.com:8443/").unwrap();
        assert_eq!(e.host_header(), "eiam.example.com:8443");
    }

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:1",
            "http://[::1]:9000",
            "http://localhost:1/",
        ] {
            assert!(Endpoint::parse(ok).unwrap().is_loopback(), "{ok}");
        }
        assert_eq!(
            Endpoint::parse("http://[::1]:9000").unwrap().host_header(),
            "[::1]:9000"
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:80")
                .unwrap()
                .host_header(),
            "127.0.0.1"
        );
        let err = Endpoint::parse("http://eiam.cn-hangzhou.aliyuncs.com").unwrap_err();
        assert!(matches!(err, EndpointError::InsecureScheme { .. }));
        assert!(
            err.to_string()
                .contains("http://eiam.cn-hangzhou.aliyuncs.com"),
            "{err}"
        );
        assert!(Endpoint::parse("http://10.0.0.1").is_err());
        assert!(Endpoint::parse("http://localhost.evil.com").is_err());
    }

    #[test]
    fn paths_queries_and_odd_schemes_are_rejected() {
        for bad in [
            "https://h/path",
            "https://h/?a=b",
            "https://u:p@h",
            "ftp://h",
            "https://",
            "https://h/#f",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn metadata_endpoint_may_use_http() {
        let e = Endpoint::parse_allowing_http("http://100.100.100.200").unwrap();
        assert_eq!(e.host_header(), "100.100.100.200");
        assert!(Endpoint::parse_allowing_http("ftp://x").is_err());
    }

    #[test]
    fn loopback_host_names() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("128.0.0.1"));
        assert!(!is_loopback_host("example.com"));
    }
}
