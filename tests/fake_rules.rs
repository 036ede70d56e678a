//! The fake EIAM enforces EIAM's rules and the gateway's checks, over real HTTP, with requests signed by the
//! crate's own signer (`eiam::request::sign`, itself built on `eiam::signer`).

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::collections::BTreeMap;
use std::time::Duration;

use eiam_operator::eiam::request::{self, RequestToSign, SignedRequest};
use eiam_operator::eiam::signer;
use eiam_operator::eiam::types::API_VERSION;
use eiam_operator::eiam::{Credentials, ErrorBody, SecretString, SignatureVersion};
use eiam_operator::fake::{
    AccessKeyConfig, FakeConfig, FakeEiam, FakeHandle, FaultPlan, InjectedSecret, MAX_VALIDITY_MS,
    MIN_VALIDITY_MS,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

const INSTANCE: &str = "idaas_rules";
const APP: &str = "app_rules";
const MINUTE_MS: i64 = 60_000;
const V1: SignatureVersion = SignatureVersion::V1;
const V3: SignatureVersion = SignatureVersion::V3;
const BOTH: [SignatureVersion; 2] = [V1, V3];

const CREATE: &str = "CreateApplicationClientSecret";
const LIST: &str = "ListApplicationClientSecrets";
const OBTAIN: &str = "ObtainApplicationClientSecret";
const DISABLE: &str = "DisableApplicationClientSecret";
const DELETE: &str = "DeleteApplicationClientSecret";
const UPDATE: &str = "UpdateApplicationClientSecretExpirationTime";

fn ak() -> Credentials {
    Credentials {
        access_key_id: "LTAIrulesAK".into(),
        access_key_secret: SecretString::new("rules-secret"),
        security_token: None,
    }
}

fn sts(id: &str, secret: &str, token: &str) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        access_key_secret: SecretString::new(secret),
        security_token: Some(SecretString::new(token)),
    }
}

fn config() -> FakeConfig {
    let mut config = FakeConfig::default();
    config.access_keys.push(
        AccessKeyConfig::parse_flag("--access-key", "LTAIrulesAK:rules-secret", false).unwrap(),
    );
    for key in [
        "STS.one:sts-secret-1:token-one",
        "STS.two:sts-secret-2:token-two",
    ] {
        config
            .access_keys
            .push(AccessKeyConfig::parse_flag("--sts-key", key, true).unwrap());
    }
    let mut expired =
        AccessKeyConfig::parse_flag("--sts-key", "STS.old:sts-secret-3:token-old", true).unwrap();
    expired.expires_at_ms = Some(Timestamp::now().as_millisecond() - MINUTE_MS);
    config.access_keys.push(expired);
    config
        .add_application_flag(&format!("{INSTANCE}/{APP}"))
        .unwrap();
    config
}

/// The fake plus an HTTP client that signs with the crate's signer.
struct World {
    fake: FakeHandle,
    http: reqwest::Client,
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["Code"].as_str().unwrap_or("OK")
    }

    fn error(&self) -> ErrorBody {
        serde_json::from_value(self.body.clone()).expect("an ErrorBody")
    }
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = [("InstanceId", INSTANCE), ("ApplicationId", APP)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in pairs {
        p.insert((*k).to_owned(), (*v).to_owned());
    }
    p
}

impl World {
    async fn start(config: FakeConfig) -> Self {
        eiam_operator::eiam::install_crypto_provider();
        let fake = FakeEiam::start(config).await.expect("start the fake");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { fake, http }
    }

    fn host(&self) -> String {
        self.fake.addr().to_string()
    }

    fn sign_at(
        &self,
        version: SignatureVersion,
        action: &str,
        params: &BTreeMap<String, String>,
        credentials: &Credentials,
        timestamp: Timestamp,
        nonce: &str,
    ) -> SignedRequest {
        let host = self.host();
        request::sign(
            version,
            &RequestToSign {
                action,
                version: API_VERSION,
                params,
                host: &host,
                timestamp,
                nonce,
            },
            credentials,
        )
    }

    fn sign(
        &self,
        version: SignatureVersion,
        action: &str,
        params: &BTreeMap<String, String>,
        credentials: &Credentials,
    ) -> SignedRequest {
        self.sign_at(
            version,
            action,
            params,
            credentials,
            Timestamp::now(),
            &request::new_nonce(),
        )
    }

    async fn send(&self, signed: &SignedRequest) -> Answer {
        self.send_raw("POST", &signed.query_string(), &signed.headers, Vec::new())
            .await
            .expect("an HTTP answer")
    }

    async fn send_raw(
        &self,
        method: &str,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let url = format!("{}/?{query}", self.fake.url());
        let mut req = self.http.request(method.parse().unwrap(), url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn call(
        &self,
        version: SignatureVersion,
        action: &str,
        pairs: &[(&str, &str)],
    ) -> Answer {
        self.send(&self.sign(version, action, &params(pairs), &ak()))
            .await
    }

    async fn create(&self, version: SignatureVersion, expiration: Option<i64>) -> Answer {
        match expiration {
            Some(ms) => {
                self.call(version, CREATE, &[("ExpirationTime", &ms.to_string())])
                    .await
            }
            None => self.call(version, CREATE, &[]).await,
        }
    }

    async fn secret_ids(&self) -> Vec<String> {
        let listed = self.call(V3, LIST, &[]).await;
        listed.body["ApplicationClientSecrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["SecretId"].as_str().unwrap().to_owned())
            .collect()
    }

    fn set_faults(&self, json: &str) {
        let plan: FaultPlan = serde_json::from_str(json).unwrap();
        self.fake.set_faults(plan).unwrap();
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn third_create_fails_with_the_quota_code() {
    for version in BOTH {
        let w = World::start(config()).await;
        assert_eq!(w.create(version, None).await.code(), "OK");
        assert_eq!(
            w.create(version, Some(now_ms() + 2 * MIN_VALIDITY_MS))
                .await
                .code(),
            "OK"
        );
        let third = w.create(version, None).await;
        assert_eq!(
            (third.status, third.code()),
            (400, "QuotaExceeded.ApplicationClientSecret"),
            "{version}"
        );
        assert_eq!(w.secret_ids().await.len(), 2);
    }
}

#[tokio::test]
async fn create_answers_exactly_request_id_and_the_secret() {
    let w = World::start(config()).await;
    let created = w.create(V3, None).await;
    let mut top: Vec<_> = created.body.as_object().unwrap().keys().cloned().collect();
    top.sort();
    assert_eq!(top, ["ApplicationClientSecret", "RequestId"]);
    let secret = created.body["ApplicationClientSecret"].as_object().unwrap();
    let mut keys: Vec<_> = secret.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["ClientId", "ClientSecret", "SecretId"]);
    assert_eq!(secret["ClientId"], APP);
    assert!(secret["SecretId"].as_str().unwrap().starts_with("sci_"));
    assert!(secret["ClientSecret"].as_str().unwrap().len() >= 40);
}

#[tokio::test]
async fn expiration_time_bounds_are_enforced() {
    let w = World::start(config()).await;
    let rejected = [
        ("23h", 23 * 60 * MINUTE_MS),
        ("3y+1d", MAX_VALIDITY_MS + MIN_VALIDITY_MS),
    ];
    for version in BOTH {
        for (label, offset) in rejected {
            let answer = w.create(version, Some(now_ms() + offset)).await;
            assert_eq!(
                (answer.status, answer.code()),
                (400, "InvalidParameter.ExpirationTime"),
                "{version} {label}"
            );
            assert!(
                answer.error().message.contains("ExpirationTime"),
                "{:?}",
                answer.body
            );
        }
    }
    for (label, offset) in [
        ("1d+1m", MIN_VALIDITY_MS + MINUTE_MS),
        ("3y-1m", MAX_VALIDITY_MS - MINUTE_MS),
    ] {
        let expiry = now_ms() + offset;
        let answer = w.create(V3, Some(expiry)).await;
        assert_eq!(answer.code(), "OK", "{label}: {:?}", answer.body);
        let id = answer.body["ApplicationClientSecret"]["SecretId"]
            .as_str()
            .unwrap()
            .to_owned();
        let obtained = w.call(V1, OBTAIN, &[("SecretId", &id)]).await;
        assert_eq!(
            obtained.body["ApplicationClientSecret"]["ExpirationTime"],
            expiry
        );
    }
    // Update applies the same bounds.
    let id = &w.secret_ids().await[0];
    let answer = w
        .call(
            V3,
            UPDATE,
            &[
                ("SecretId", id),
                (
                    "ExpirationTime",
                    &(now_ms() + 23 * 60 * MINUTE_MS).to_string(),
                ),
            ],
        )
        .await;
    assert_eq!(answer.code(), "InvalidParameter.ExpirationTime");
    let answer = w
        .call(V3, UPDATE, &[("SecretId", id), ("ExpirationTime", "soon")])
        .await;
    assert_eq!(answer.code(), "InvalidParameter.ExpirationTime");
}

/// Changes one character of a base64 or hex signature to another valid character.
fn flip(c: char) -> char {
    if c == 'a' { 'b' } else { 'a' }
}

#[tokio::test]
async fn a_one_character_signature_change_is_rejected() {
    let w = World::start(config()).await;

    // V1: the server's StringToSign is quoted in the message and equals the one the client signed.
    let mut signed = w.sign(V1, LIST, &params(&[]), &ak());
    let original = signed.query["Signature"].clone();
    let mut chars: Vec<char> = original.chars().collect();
    chars[5] = flip(chars[5]);
    signed
        .query
        .insert("Signature".into(), chars.into_iter().collect());
    let answer = w.send(&signed).await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "SignatureDoesNotMatch")
    );
    let ours = signer::v1_string_to_sign("POST", &signed.query);
    assert_eq!(
        answer.error().message,
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{ours}"
        )
    );

    // V3: one character of the Authorization signature.
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    for (name, value) in &mut signed.headers {
        if name == "authorization" {
            let mut chars: Vec<char> = value.chars().collect();
            let last = chars.len() - 1;
            chars[last] = flip(chars[last]);
            *value = chars.into_iter().collect();
        }
    }
    let answer = w.send(&signed).await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "SignatureDoesNotMatch")
    );
    assert!(
        answer
            .error()
            .message
            .contains("server string to sign is:ACS3-HMAC-SHA256\n")
    );

    // A parameter changed after signing, or a different method than signed, is caught too.
    for version in BOTH {
        let mut signed = w.sign(version, LIST, &params(&[]), &ak());
        signed
            .query
            .insert("ApplicationId".into(), "app_other".into());
        assert_eq!(
            w.send(&signed).await.code(),
            "SignatureDoesNotMatch",
            "{version}"
        );
        let signed = w.sign(version, LIST, &params(&[]), &ak());
        let answer = w
            .send_raw("GET", &signed.query_string(), &signed.headers, Vec::new())
            .await
            .unwrap();
        assert_eq!(
            answer.code(),
            "SignatureDoesNotMatch",
            "{version}: signed POST, sent GET"
        );
    }
    // Nothing was created by any of it, and the untouched request still works.
    assert_eq!(w.call(V1, LIST, &[]).await.code(), "OK");
}

#[tokio::test]
async fn wrong_access_key_secret_is_rejected() {
    let w = World::start(config()).await;
    let mut wrong = ak();
    wrong.access_key_secret = SecretString::new("rules-secreT");
    for version in BOTH {
        let answer = w.send(&w.sign(version, LIST, &params(&[]), &wrong)).await;
        assert_eq!(answer.code(), "SignatureDoesNotMatch", "{version}");
    }
}

#[tokio::test]
async fn a_replayed_nonce_is_rejected() {
    let w = World::start(config()).await;
    for version in BOTH {
        let signed = w.sign(version, LIST, &params(&[]), &ak());
        assert_eq!(w.send(&signed).await.code(), "OK");
        let replay = w.send(&signed).await;
        assert_eq!(
            (replay.status, replay.code()),
            (400, "SignatureNonceUsed"),
            "{version}"
        );
        // A fresh nonce with a fresh signature goes through.
        assert_eq!(
            w.send(&w.sign(version, LIST, &params(&[]), &ak()))
                .await
                .code(),
            "OK"
        );
    }
    // A replayed Create does not create a second secret.
    let signed = w.sign(V3, CREATE, &params(&[]), &ak());
    assert_eq!(w.send(&signed).await.code(), "OK");
    assert_eq!(w.send(&signed).await.code(), "SignatureNonceUsed");
    assert_eq!(w.secret_ids().await.len(), 1);
}

#[tokio::test]
async fn a_nonce_is_consumed_only_by_a_verified_request() {
    let w = World::start(config()).await;
    let nonce = request::new_nonce();
    let mut wrong = ak();
    wrong.access_key_secret = SecretString::new("nope");
    let now = Timestamp::now();
    let bad = w.sign_at(V3, LIST, &params(&[]), &wrong, now, &nonce);
    assert_eq!(w.send(&bad).await.code(), "SignatureDoesNotMatch");
    let good = w.sign_at(V3, LIST, &params(&[]), &ak(), now, &nonce);
    assert_eq!(w.send(&good).await.code(), "OK");
}

#[tokio::test]
async fn timestamps_more_than_15_minutes_off_are_rejected() {
    let w = World::start(config()).await;
    for version in BOTH {
        for (label, offset_min, expected) in [
            ("20 minutes old", -20, "InvalidTimeStamp.Expired"),
            ("20 minutes ahead", 20, "InvalidTimeStamp.Expired"),
            ("14 minutes old", -14, "OK"),
        ] {
            let at = Timestamp::now() + SignedDuration::from_mins(offset_min);
            let signed = w.sign_at(
                version,
                LIST,
                &params(&[]),
                &ak(),
                at,
                &request::new_nonce(),
            );
            let answer = w.send(&signed).await;
            assert_eq!(answer.code(), expected, "{version} {label}");
        }
    }
    // The server's clock is what counts: skew it and a correct client clock becomes stale.
    w.fake.set_clock_skew_ms(30 * MINUTE_MS);
    assert_eq!(
        w.call(V3, LIST, &[]).await.code(),
        "InvalidTimeStamp.Expired"
    );
    w.fake.set_clock_skew_ms(0);

    // A malformed timestamp is a format error, reported before the signature is checked.
    let mut signed = w.sign(V1, LIST, &params(&[]), &ak());
    signed
        .query
        .insert("Timestamp".into(), "2026-01-01 00:00:00".into());
    assert_eq!(w.send(&signed).await.code(), "InvalidTimeStamp.Format");
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    for (name, value) in &mut signed.headers {
        if name == "x-acs-date" {
            *value = "2026-01-01T00:00:00.000Z".into();
        }
    }
    assert_eq!(w.send(&signed).await.code(), "InvalidTimeStamp.Format");
}

#[tokio::test]
async fn unknown_access_key_id_is_rejected() {
    let w = World::start(config()).await;
    let mut stranger = ak();
    stranger.access_key_id = "LTAIstranger".into();
    for version in BOTH {
        let answer = w
            .send(&w.sign(version, LIST, &params(&[]), &stranger))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "InvalidAccessKeyId.NotFound"),
            "{version}"
        );
    }
    // Removing a key behind the client's back has the same effect.
    assert!(w.fake.remove_access_key("LTAIrulesAK"));
    assert_eq!(
        w.call(V3, LIST, &[]).await.code(),
        "InvalidAccessKeyId.NotFound"
    );
}

#[tokio::test]
async fn sts_credentials_need_their_own_valid_token() {
    let w = World::start(config()).await;
    for version in BOTH {
        let cases = [
            (sts("STS.one", "sts-secret-1", "token-one"), "OK"),
            (
                sts("STS.one", "sts-secret-1", "token-two"),
                "InvalidSecurityToken.MismatchWithAccessKey",
            ),
            (
                sts("STS.one", "sts-secret-1", "token-junk"),
                "InvalidSecurityToken.Malformed",
            ),
            (
                sts("STS.old", "sts-secret-3", "token-old"),
                "InvalidSecurityToken.Expired",
            ),
        ];
        for (credentials, expected) in cases {
            let answer = w
                .send(&w.sign(version, LIST, &params(&[]), &credentials))
                .await;
            assert_eq!(
                answer.code(),
                expected,
                "{version} {}",
                credentials.access_key_id
            );
        }
        let mut missing = sts("STS.one", "sts-secret-1", "token-one");
        missing.security_token = None;
        let answer = w.send(&w.sign(version, LIST, &params(&[]), &missing)).await;
        assert_eq!(answer.code(), "MissingSecurityToken", "{version}");
    }
    // A token sent with V3 must be signed.
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    signed
        .headers
        .push(("x-acs-security-token".into(), "token-one".into()));
    assert_eq!(w.send(&signed).await.code(), "IncompleteSignature");
}

#[tokio::test]
async fn list_masks_and_obtain_returns_the_secret_in_clear() {
    let w = World::start(config()).await;
    let created = w.create(V1, None).await;
    let clear = created.body["ApplicationClientSecret"]["ClientSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created.body["ApplicationClientSecret"]["SecretId"]
        .as_str()
        .unwrap()
        .to_owned();
    for version in BOTH {
        let listed = w.call(version, LIST, &[]).await;
        assert_eq!(listed.body["TotalCount"], 1);
        let item = &listed.body["ApplicationClientSecrets"][0];
        let masked = item["ClientSecret"].as_str().unwrap();
        assert_ne!(masked, clear);
        assert_eq!(&masked[..4], &clear[..4]);
        assert_eq!(&masked[masked.len() - 2..], &clear[clear.len() - 2..]);
        assert!(masked[4..masked.len() - 2].chars().all(|c| c == '*'));
        assert!(
            !listed.body.to_string().contains(&clear),
            "the clear value leaks from List"
        );
        assert_eq!(item["Status"], "enabled");
        assert_eq!(item["ClientId"], APP);
        assert!(
            item.get("ExpirationTime").is_none(),
            "never-expiring secret: field omitted by default"
        );

        let obtained = w.call(version, OBTAIN, &[("SecretId", &id)]).await;
        let secret = &obtained.body["ApplicationClientSecret"];
        assert_eq!(secret["ClientSecret"], clear.as_str());
        for field in [
            "InstanceId",
            "ApplicationId",
            "ClientId",
            "SecretId",
            "Status",
        ] {
            assert!(secret.get(field).is_some(), "Obtain lacks {field}");
        }
    }
}

#[tokio::test]
async fn unknown_instance_application_and_secret_have_their_codes() {
    let w = World::start(config()).await;
    let cases = [
        (
            LIST,
            params(&[("InstanceId", "idaas_nope")]),
            "EntityNotExists.Instance",
        ),
        (
            LIST,
            params(&[("ApplicationId", "app_nope")]),
            "EntityNotExists.Application",
        ),
        (
            OBTAIN,
            params(&[("SecretId", "sci_nope")]),
            "EntityNotExists.ApplicationClientSecret",
        ),
        (
            DELETE,
            params(&[("SecretId", "sci_nope")]),
            "EntityNotExists.ApplicationClientSecret",
        ),
    ];
    for version in BOTH {
        for (action, p, expected) in &cases {
            let answer = w.send(&w.sign(version, action, p, &ak())).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, *expected),
                "{version} {action}"
            );
        }
    }
    // Missing parameters and unknown actions.
    let answer = w.send(&w.sign(V3, OBTAIN, &params(&[]), &ak())).await;
    assert_eq!((answer.status, answer.code()), (400, "MissingSecretId"));
    let mut only_app = params(&[]);
    only_app.remove("InstanceId");
    assert_eq!(
        w.send(&w.sign(V1, LIST, &only_app, &ak())).await.code(),
        "MissingInstanceId"
    );
    let answer = w
        .send(&w.sign(V1, "DescribeRegions", &params(&[]), &ak()))
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (404, "InvalidAction.NotFound")
    );
}

#[tokio::test]
async fn error_codes_are_configurable() {
    let mut config = config();
    config.error_codes = serde_json::from_str(
        r#"{"applicationNotFound":{"code":"EntityNotExist.Application","status":400},
            "quotaExceeded":{"code":"ExceedLimit.ClientSecret","status":409}}"#,
    )
    .unwrap();
    let w = World::start(config).await;
    let answer = w.call(V3, LIST, &[("ApplicationId", "app_nope")]).await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "EntityNotExist.Application")
    );
    w.create(V3, None).await;
    w.create(V3, None).await;
    let answer = w.create(V3, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, "ExceedLimit.ClientSecret")
    );
    // Untouched codes keep their defaults.
    let answer = w.call(V3, LIST, &[("InstanceId", "idaas_nope")]).await;
    assert_eq!(answer.code(), "EntityNotExists.Instance");
}

#[tokio::test]
async fn every_response_carries_a_fresh_request_id() {
    let w = World::start(config()).await;
    let a = w.call(V3, LIST, &[]).await;
    let b = w.call(V3, LIST, &[("InstanceId", "idaas_nope")]).await;
    let b_error = b.error();
    let ids = [
        a.body["RequestId"].as_str().unwrap(),
        b_error.request_id.as_str(),
    ];
    assert_ne!(ids[0], ids[1]);
    for id in ids {
        assert_eq!(
            id.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert_eq!(id, id.to_ascii_uppercase());
    }
    assert_eq!(a.headers["x-acs-request-id"], ids[0]);
    let body = b.error();
    assert_eq!(body.host_id.as_deref(), Some(w.host().as_str()));
    assert!(body.recommend.unwrap().contains(&body.request_id));
}

#[tokio::test]
async fn disable_before_delete_when_configured() {
    let mut config = config();
    config.require_disable_before_delete = true;
    let w = World::start(config).await;
    let id = w.create(V3, None).await.body["ApplicationClientSecret"]["SecretId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        w.call(V3, DELETE, &[("SecretId", &id)]).await.code(),
        "OperationDenied.ApplicationClientSecretEnabled"
    );
    assert_eq!(w.call(V3, DISABLE, &[("SecretId", &id)]).await.code(), "OK");
    assert_eq!(w.call(V3, DELETE, &[("SecretId", &id)]).await.code(), "OK");
    assert!(w.secret_ids().await.is_empty());
}

#[tokio::test]
async fn v1_accepts_form_bodies_plus_as_space_and_get() {
    let w = World::start(config()).await;
    // Business parameters in a form body, signed together with the query.
    let mut all = params(&[]);
    let now = eiam_operator::eiam::clock::format_acs_timestamp(Timestamp::now());
    for (k, v) in [
        ("Action", LIST),
        ("Version", API_VERSION),
        ("Format", "JSON"),
        ("AccessKeyId", "LTAIrulesAK"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", now.as_str()),
        ("Note", "a b*c~"),
    ] {
        all.insert(k.into(), v.into());
    }
    let sign = |method: &str, nonce: &str, all: &BTreeMap<String, String>| {
        let mut all = all.clone();
        all.insert("SignatureNonce".into(), nonce.into());
        let sig = signer::v1_signature("rules-secret", &signer::v1_string_to_sign(method, &all));
        all.insert("Signature".into(), sig);
        all
    };
    let signed = sign("POST", &request::new_nonce(), &all);
    let (in_body, in_query): (BTreeMap<_, _>, BTreeMap<_, _>) = signed
        .into_iter()
        .partition(|(k, _)| k == "InstanceId" || k == "ApplicationId" || k == "Note");
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&in_body)
        .finish();
    let answer = w
        .send_raw(
            "POST",
            &request::encode_query(&in_query),
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            form.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(answer.code(), "OK", "{:?}", answer.body);

    // The query encoded as Python's urlencode does it (space as `+`), signed with GET and sent with GET.
    let signed = sign("GET", &request::new_nonce(), &all);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&signed)
        .finish();
    assert!(query.contains("Note=a+b"));
    let answer = w.send_raw("GET", &query, &[], Vec::new()).await.unwrap();
    assert_eq!(answer.code(), "OK", "{:?}", answer.body);
}

#[tokio::test]
async fn v1_without_format_json_answers_xml() {
    let w = World::start(config()).await;
    let mut signed = w.sign(V1, "NoSuchAction", &params(&[]), &ak());
    signed.query.remove("Format");
    let answer = w.send(&signed).await;
    let text = answer.body.as_str().expect("not JSON");
    assert_eq!(answer.status, 404);
    assert!(
        text.starts_with("<?xml") && text.contains("<Code>InvalidAction.NotFound</Code>"),
        "{text}"
    );
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
}

#[tokio::test]
async fn v3_header_rules() {
    let w = World::start(config()).await;
    // Malformed Authorization.
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    for (name, value) in &mut signed.headers {
        if name == "authorization" {
            *value = value.replace("SignedHeaders=", "Headers=");
        }
    }
    assert_eq!(w.send(&signed).await.code(), "IncompleteSignature");
    // An x-acs-* header that is sent but not signed.
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    signed.headers.push(("x-acs-extra".into(), "1".into()));
    assert_eq!(w.send(&signed).await.code(), "IncompleteSignature");
    // A body that does not match x-acs-content-sha256.
    let signed = w.sign(V3, LIST, &params(&[]), &ak());
    let answer = w
        .send_raw(
            "POST",
            &signed.query_string(),
            &signed.headers,
            b"x=1".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(answer.code(), "SignatureDoesNotMatch");
    assert!(answer.error().message.contains("x-acs-content-sha256"));
    // A required header missing altogether.
    let mut signed = w.sign(V3, LIST, &params(&[]), &ak());
    signed
        .headers
        .retain(|(name, _)| name != "x-acs-signature-nonce");
    assert_eq!(w.send(&signed).await.code(), "IncompleteSignature");
}

#[tokio::test]
async fn faults_throttle_every_nth_call_with_retry_after() {
    let w = World::start(config()).await;
    w.set_faults(r#"{"rules":[{"kind":"throttle","everyNth":2,"retryAfterMs":1500}]}"#);
    let codes: Vec<String> = futures_codes(&w, 4).await;
    assert_eq!(codes, ["OK", "Throttling", "OK", "Throttling"]);
    let answer = w.call(V3, LIST, &[]).await;
    assert_eq!(answer.code(), "OK");
    let answer = w.call(V3, LIST, &[]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.headers["x-acs-retry-after"], "1500");
    let calls = w.fake.calls();
    assert_eq!(calls.last().unwrap().fault.as_deref(), Some("throttle"));
}

async fn futures_codes(w: &World, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(w.call(V1, LIST, &[]).await.code().to_owned());
    }
    out
}

#[tokio::test]
async fn faults_server_errors_for_the_next_calls_and_per_action() {
    let w = World::start(config()).await;
    w.set_faults(r#"{"rules":[{"kind":"serverError","status":503,"next":2,"action":"CreateApplicationClientSecret"}]}"#);
    assert_eq!(
        w.call(V3, LIST, &[]).await.code(),
        "OK",
        "other actions are not affected"
    );
    let first = w.create(V3, None).await;
    assert_eq!((first.status, first.code()), (503, "ServiceUnavailable"));
    assert_eq!(w.create(V3, None).await.code(), "ServiceUnavailable");
    assert_eq!(w.create(V3, None).await.code(), "OK");
    assert_eq!(w.secret_ids().await.len(), 1, "a 5xx fault has no effect");
    w.set_faults(r#"{"rules":[{"kind":"serverError","status":500,"everyNth":3}]}"#);
    let codes = futures_codes(&w, 3).await;
    assert_eq!(codes, ["OK", "OK", "InternalError"]);
}

#[tokio::test]
async fn faults_drop_the_connection_before_or_after_applying() {
    let w = World::start(config()).await;
    w.set_faults(r#"{"rules":[{"kind":"dropConnection","action":"CreateApplicationClientSecret","next":1}]}"#);
    let signed = w.sign(V3, CREATE, &params(&[]), &ak());
    let err = w
        .send_raw("POST", &signed.query_string(), &signed.headers, Vec::new())
        .await
        .expect_err("no response");
    assert!(!err.is_status(), "{err}");
    assert!(w.secret_ids().await.is_empty(), "dropped before applying");

    w.set_faults(r#"{"rules":[{"kind":"dropConnection","when":"after","action":"CreateApplicationClientSecret","next":1}]}"#);
    let signed = w.sign(V3, CREATE, &params(&[]), &ak());
    assert!(
        w.send_raw("POST", &signed.query_string(), &signed.headers, Vec::new())
            .await
            .is_err()
    );
    assert_eq!(
        w.secret_ids().await.len(),
        1,
        "applied although the caller heard nothing"
    );
    let creates = w.fake.calls_of(CREATE);
    assert_eq!(creates[0].outcome, "ConnectionDropped");
    assert_eq!(creates[1].outcome, "ConnectionDropped(applied)");
    assert_eq!(creates[1].fault.as_deref(), Some("dropConnection(after)"));
    // The server keeps serving.
    assert_eq!(w.create(V3, None).await.code(), "OK");
}

#[tokio::test]
async fn faults_latency_outlasts_a_short_client_timeout() {
    let w = World::start(config()).await;
    w.set_faults(r#"{"rules":[{"kind":"latency","latencyMs":2000,"next":1}]}"#);
    let signed = w.sign(V3, LIST, &params(&[]), &ak());
    let err = w
        .http
        .post(format!("{}/?{}", w.fake.url(), signed.query_string()))
        .headers(
            signed
                .headers
                .iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .expect_err("the fake answers after the timeout");
    assert!(err.is_timeout(), "{err}");
    // Only the next call was delayed.
    assert_eq!(w.call(V3, LIST, &[]).await.code(), "OK");
}

#[tokio::test]
async fn faults_qps_cap_answers_throttling_user() {
    let w = World::start(config()).await;
    w.set_faults(r#"{"rules":[{"kind":"qpsCap","qps":2}]}"#);
    let codes = futures_codes(&w, 10).await;
    let throttled = codes.iter().filter(|c| *c == "Throttling.User").count();
    assert_eq!(&codes[..2], ["OK", "OK"]);
    assert!(throttled >= 1, "{codes:?}");
    assert!(
        codes.iter().all(|c| c == "OK" || c == "Throttling.User"),
        "{codes:?}"
    );
    // An invalid plan is refused with the field named, and the old plan stays.
    let bad: FaultPlan = serde_json::from_str(r#"{"rules":[{"kind":"latency"}]}"#).unwrap();
    let err = w.fake.set_faults(bad).unwrap_err();
    assert!(err.to_string().contains("latencyMs"), "{err}");
    assert_eq!(w.fake.state().faults.len(), 1);
}

#[tokio::test]
async fn behind_the_back_changes_are_visible_through_the_api() {
    let w = World::start(config()).await;
    let outsider = w
        .fake
        .insert_secret(InjectedSecret {
            instance_id: INSTANCE.into(),
            application_id: APP.into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        w.secret_ids().await,
        std::slice::from_ref(&outsider.secret_id)
    );
    w.create(V3, None).await;
    assert_eq!(
        w.create(V3, None).await.code(),
        "QuotaExceeded.ApplicationClientSecret",
        "outsiders count"
    );
    w.fake
        .delete_secret(INSTANCE, APP, &outsider.secret_id)
        .unwrap();
    assert_eq!(w.secret_ids().await.len(), 1);
    w.fake.reset();
    assert!(w.secret_ids().await.is_empty());
    assert_eq!(w.fake.calls().len(), 1, "reset clears the call log");
}

#[tokio::test]
async fn the_call_log_keeps_no_credentials() {
    let w = World::start(config()).await;
    let credentials = sts("STS.one", "sts-secret-1", "token-one");
    w.send(&w.sign(V1, LIST, &params(&[]), &credentials)).await;
    let created = w
        .send(&w.sign(V1, CREATE, &params(&[]), &credentials))
        .await;
    let clear = created.body["ApplicationClientSecret"]["ClientSecret"]
        .as_str()
        .unwrap();
    let log = serde_json::to_string(&w.fake.calls()).unwrap();
    for secret in ["token-one", "sts-secret-1", clear] {
        assert!(!log.contains(secret), "{secret} in the call log");
    }
    for call in w.fake.calls() {
        assert!(
            !call.params.contains_key("Signature") && !call.params.contains_key("SecurityToken")
        );
    }
    assert!(log.contains("STS.one"));
}
