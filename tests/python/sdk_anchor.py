"""Anchor test: the official Alibaba Cloud Python SDK drives a running fake-eiam.

A client no one on this project wrote is the proof that the fake verifies signatures, parses requests and shapes
responses as Alibaba Cloud does. The script runs all seven client-secret actions with the SDK's default V3
signing (ACS3-HMAC-SHA256) and with signature_algorithm='v2' (V1 HMAC-SHA1), each with a plain AccessKey and
with STS credentials, then checks that a wrong AccessKey secret gets SignatureDoesNotMatch in both modes, and
finally cross-checks the fake's call log (every call arrived with the expected signature version and key).

Usage: python sdk_anchor.py --endpoint http://127.0.0.1:PORT --instance ID --application ID
         --ak ID:SECRET --sts ID:SECRET:TOKEN
Exit status 0 and a last line "sdk-anchor: N checks passed" on success; any failed check exits non-zero.
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

from alibabacloud_eiam20211201 import models
from alibabacloud_eiam20211201.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config

DAY_MS = 24 * 60 * 60 * 1000
CHECKS = 0


def check(condition, what):
    global CHECKS
    if not condition:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    CHECKS += 1


def expect_error(call, code, what):
    try:
        call()
    except ClientException as e:
        check(e.code == code, f"{what}: expected {code}, got {e.code} ({e.message})")
        return e
    check(False, f"{what}: expected {code}, but the call succeeded")


def client(endpoint, key_id, key_secret, token=None, v1=False):
    url = urllib.parse.urlparse(endpoint)
    config = Config(
        access_key_id=key_id,
        access_key_secret=key_secret,
        security_token=token,
        # The SDK builds the URL as protocol + "://" + endpoint + pathname, with no port of its own.
        endpoint=url.netloc,
        protocol=url.scheme,
    )
    if v1:
        config.signature_algorithm = "v2"
    return Client(config)


def drive_all_actions(c, instance, app, mode):
    """Every action, every rule the operator depends on, ending with the application empty again."""
    now_ms = int(time.time() * 1000)
    expiry = now_ms + 2 * DAY_MS

    first = c.create_application_client_secret(
        models.CreateApplicationClientSecretRequest(
            instance_id=instance, application_id=app, expiration_time=expiry
        )
    ).body.application_client_secret
    check(first.secret_id.startswith("sci_"), f"{mode}: Create returns a sci_ SecretId")
    check(len(first.client_secret) >= 40, f"{mode}: Create returns the secret in clear")
    check(first.client_id == app, f"{mode}: ClientId equals the ApplicationId")

    second = c.create_application_client_secret(
        models.CreateApplicationClientSecretRequest(instance_id=instance, application_id=app)
    ).body.application_client_secret
    check(second.secret_id != first.secret_id, f"{mode}: second Create gives a new SecretId")

    expect_error(
        lambda: c.create_application_client_secret(
            models.CreateApplicationClientSecretRequest(instance_id=instance, application_id=app)
        ),
        "QuotaExceeded.ApplicationClientSecret",
        f"{mode}: third Create",
    )

    listed = c.list_application_client_secrets(
        models.ListApplicationClientSecretsRequest(instance_id=instance, application_id=app)
    ).body
    check(listed.total_count == 2, f"{mode}: List counts two secrets")
    by_id = {s.secret_id: s for s in listed.application_client_secrets}
    for created in (first, second):
        item = by_id.get(created.secret_id)
        check(item is not None, f"{mode}: List shows {created.secret_id}")
        check(item.client_secret != created.client_secret, f"{mode}: List masks the secret")
        check(
            item.client_secret[:4] == created.client_secret[:4]
            and item.client_secret[-2:] == created.client_secret[-2:]
            and set(item.client_secret[4:-2]) == {"*"},
            f"{mode}: List keeps the first 4 and last 2 characters",
        )
        check(item.status == "enabled", f"{mode}: a new secret is enabled")
        check(item.instance_id == instance and item.application_id == app, f"{mode}: List item ids")
    check(by_id[first.secret_id].expiration_time == expiry, f"{mode}: List shows ExpirationTime")

    def obtain(secret_id):
        return c.obtain_application_client_secret(
            models.ObtainApplicationClientSecretRequest(
                instance_id=instance, application_id=app, secret_id=secret_id
            )
        ).body.application_client_secret

    got = obtain(first.secret_id)
    check(got.client_secret == first.client_secret, f"{mode}: Obtain returns the secret in clear")
    check(got.expiration_time == expiry and got.status == "enabled", f"{mode}: Obtain fields")

    ref = dict(instance_id=instance, application_id=app, secret_id=first.secret_id)
    c.disable_application_client_secret(models.DisableApplicationClientSecretRequest(**ref))
    check(obtain(first.secret_id).status == "disabled", f"{mode}: Disable")
    c.enable_application_client_secret(models.EnableApplicationClientSecretRequest(**ref))
    check(obtain(first.secret_id).status == "enabled", f"{mode}: Enable")

    later = now_ms + 10 * DAY_MS
    c.update_application_client_secret_expiration_time(
        models.UpdateApplicationClientSecretExpirationTimeRequest(**ref, expiration_time=later)
    )
    check(obtain(first.secret_id).expiration_time == later, f"{mode}: UpdateExpirationTime")
    expect_error(
        lambda: c.update_application_client_secret_expiration_time(
            models.UpdateApplicationClientSecretExpirationTimeRequest(
                **ref, expiration_time=now_ms + 23 * 60 * 60 * 1000
            )
        ),
        "InvalidParameter.ExpirationTime",
        f"{mode}: UpdateExpirationTime to 23h",
    )

    for secret in (first, second):
        r = dict(instance_id=instance, application_id=app, secret_id=secret.secret_id)
        c.disable_application_client_secret(models.DisableApplicationClientSecretRequest(**r))
        c.delete_application_client_secret(models.DeleteApplicationClientSecretRequest(**r))
    listed = c.list_application_client_secrets(
        models.ListApplicationClientSecretsRequest(instance_id=instance, application_id=app)
    ).body
    check(listed.total_count == 0, f"{mode}: Delete removed both secrets")
    expect_error(
        lambda: obtain(first.secret_id),
        "EntityNotExists.ApplicationClientSecret",
        f"{mode}: Obtain of a deleted secret",
    )
    print(f"ok: {mode}: all seven actions", flush=True)


def fetch_calls(endpoint):
    with urllib.request.urlopen(endpoint.rstrip("/") + "/_fake/calls", timeout=10) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--application", required=True)
    parser.add_argument("--ak", required=True, help="ID:SECRET")
    parser.add_argument("--sts", required=True, help="ID:SECRET:TOKEN")
    args = parser.parse_args()
    ak_id, ak_secret = args.ak.split(":", 1)
    sts_id, sts_secret, sts_token = args.sts.split(":", 2)

    modes = [
        ("v3/ak", client(args.endpoint, ak_id, ak_secret), "v3", ak_id),
        ("v3/sts", client(args.endpoint, sts_id, sts_secret, sts_token), "v3", sts_id),
        ("v1/ak", client(args.endpoint, ak_id, ak_secret, v1=True), "v1", ak_id),
        ("v1/sts", client(args.endpoint, sts_id, sts_secret, sts_token, v1=True), "v1", sts_id),
    ]
    before = len(fetch_calls(args.endpoint))
    for mode, c, _, _ in modes:
        drive_all_actions(c, args.instance, args.application, mode)

    # The fake's own log must agree: each mode's calls arrived signed the way the mode says, all seven actions.
    calls = fetch_calls(args.endpoint)[before:]
    for mode, _, version, key_id in modes:
        mine = [c for c in calls if c["signatureVersion"] == version and c.get("accessKeyId") == key_id]
        actions = {c["action"] for c in mine}
        check(len(actions) == 7, f"{mode}: the fake saw all seven actions signed {version}, saw {sorted(actions)}")
        check(
            all(c["outcome"] == "OK" or c["status"] in (400, 404) for c in mine),
            f"{mode}: no unexpected outcome in the fake's log",
        )
        check(
            not any(c["outcome"] in ("SignatureDoesNotMatch", "IncompleteSignature") for c in mine),
            f"{mode}: no signature was rejected",
        )

    # A wrong secret must be caught by the signature check, in both signature versions.
    for mode, v1 in (("v3", False), ("v1", True)):
        wrong = client(args.endpoint, ak_id, ak_secret + "x", v1=v1)
        e = expect_error(
            lambda: wrong.list_application_client_secrets(
                models.ListApplicationClientSecretsRequest(
                    instance_id=args.instance, application_id=args.application
                )
            ),
            "SignatureDoesNotMatch",
            f"{mode}: wrong AccessKey secret",
        )
        check("server string to sign is:" in e.message, f"{mode}: the message quotes the server's StringToSign")
        print(f"ok: {mode}: wrong secret rejected with SignatureDoesNotMatch", flush=True)

    # A wrong STS token is refused before the signature is even looked at.
    bad_token = client(args.endpoint, sts_id, sts_secret, sts_token + "x")
    expect_error(
        lambda: bad_token.list_application_client_secrets(
            models.ListApplicationClientSecretsRequest(instance_id=args.instance, application_id=args.application)
        ),
        "InvalidSecurityToken.Malformed",
        "v3: wrong STS token",
    )
    print(f"sdk-anchor: {CHECKS} checks passed", flush=True)


if __name__ == "__main__":
    main()
