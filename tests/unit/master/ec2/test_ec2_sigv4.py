"""AWS Signature Version 4 on the server: AWS's own test suite (canonical request, string to sign, signature),
requests botocore signs (header and presigned query) accepted, and every way a request can be wrong refused with
AuthFailure or RequestExpired, nothing launched."""

import datetime
import glob
import hashlib
import os

import pytest

from condor_cloud.master.ec2 import sigv4

from .conftest import REGION, call, error_code, raw, send, sign

SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "aws4_testsuite")
SUITE_KEY, SUITE_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_NOW = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.timezone.utc)
CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(SUITE, "*.req")))
# an empty parameter set would skip, not fail: a suite that went missing must fail collection
assert len(CASES) == 28, "AWS SigV4 test suite missing or incomplete in %s: %s" % (SUITE, CASES)


def read(name, ext):
    with open(os.path.join(SUITE, "%s.%s" % (name, ext)), encoding="utf-8") as f:
        return f.read()


def suite_request(name):
    """The test case's request as a WSGI application receives it (path decoded, query raw, headers joined)."""
    text = read(name, "req")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" ", 1)[0]     # the path may contain a space (get-space)
    path, _, query = target.partition("?")
    headers = {}
    for line in lines[1:]:
        name_, _, value = line.partition(":")
        key = name_.strip().lower()
        headers[key] = headers[key] + "," + value.strip() if key in headers else value.strip()
    return sigv4.Request(method, path, query, headers, body.encode("utf-8"))


def authz_fields(name):
    return sigv4.parse_authorization(read(name, "authz").strip())


def test_the_suite_is_there():
    assert len(CASES) >= 25, CASES


@pytest.mark.parametrize("name", CASES)
def test_aws_test_suite_canonical_request_and_signature(name):
    request = suite_request(name)
    fields = authz_fields(name)
    signed = sigv4.parse_signed_headers(fields["SignedHeaders"])
    creq = sigv4.canonical_request(request, signed, hashlib.sha256(request.body).hexdigest())
    assert creq == read(name, "creq")
    credential = sigv4.parse_credential(fields["Credential"])
    assert sigv4.string_to_sign(request.headers["x-amz-date"], credential, creq) == read(name, "sts")
    assert sigv4.signature(SUITE_SECRET, request.headers["x-amz-date"], credential, creq) == fields["Signature"]


@pytest.mark.parametrize("name", CASES)
def test_aws_test_suite_requests_verify(name):
    request = suite_request(name)
    request = sigv4.Request(request.method, request.path, request.query,
                            dict(request.headers, authorization=read(name, "authz").strip()), request.body)
    assert sigv4.verify(request, {SUITE_KEY: SUITE_SECRET}.get, SUITE_NOW, "us-east-1", "service") == SUITE_KEY
    with pytest.raises(sigv4.SignatureError) as exc:
        sigv4.verify(request, {SUITE_KEY: SUITE_SECRET[:-1] + "X"}.get, SUITE_NOW, "us-east-1", "service")
    assert exc.value.code == "AuthFailure"


def test_signatures_are_compared_in_constant_time(monkeypatch):
    name = "get-vanilla"
    request = suite_request(name)
    request = sigv4.Request(request.method, request.path, request.query,
                            dict(request.headers, authorization=read(name, "authz").strip()), request.body)
    seen = []
    real = sigv4.hmac.compare_digest
    monkeypatch.setattr(sigv4.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    sigv4.verify(request, {SUITE_KEY: SUITE_SECRET}.get, SUITE_NOW, "us-east-1", "service")
    assert seen and seen[0][1] == authz_fields(name)["Signature"].encode()


# -- through the application, signed by botocore ---------------------------------------------------------------
def test_a_request_botocore_signs_is_accepted(env):
    status, _, body = call(env, "DescribeRegions")
    assert status == 200, body
    assert b"<regionName>condor-cloud</regionName>" in body


def test_parameters_in_the_query_string_of_a_get(env):
    status, _, body = raw(env, {"Action": "DescribeRegions", "Version": "2016-11-15"}, method="GET")
    assert status == 200, body


def test_parameters_in_both_query_and_body(env):
    url, headers, data = sign(env, {"Version": "2016-11-15"}, query="Action=DescribeAvailabilityZones")
    status, _, body = send(env, "POST", url, headers, data)
    assert status == 200 and b"<zoneName>default</zoneName>" in body, body


def test_a_wrong_secret_is_refused_and_nothing_runs(env):
    status, _, body = raw(env, {"Action": "RunInstances", "Version": "2016-11-15", "ImageId": "ami-0", "MinCount": "1",
                                "MaxCount": "1"}, secret="x" * 40)
    assert status == 401 and error_code(body)[0] == "AuthFailure"
    assert env.schedd.submitted == []


def test_an_unknown_access_key_is_refused(env):
    env.creds["alice"] = type(env.creds["alice"])("AKCCAAAAAAAAAAAAAAAA", "alice", 0, "y" * 40)
    status, _, body = call(env, "DescribeRegions")
    assert status == 401 and error_code(body)[0] == "AuthFailure"


def test_a_removed_users_keys_stop_working(env, tmp_path):
    text = (tmp_path / "users").read_text()
    (tmp_path / "users").write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("alice:")))
    status, _, body = call(env, "DescribeRegions")
    assert status == 401 and "user does not exist" in error_code(body)[1]
    assert call(env, "DescribeRegions", user="bob")[0] == 200


@pytest.mark.parametrize("minutes, ok", [(-14, True), (14, True), (-16, False), (16, False), (-600, False)])
def test_clock_skew_over_15_minutes_is_request_expired(env, minutes, ok):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    status, _, body = raw(env, {"Action": "DescribeRegions", "Version": "2016-11-15"}, when=when)
    if ok:
        assert status == 200, body
    else:
        assert status == 400 and error_code(body)[0] == "RequestExpired", body


def test_the_servers_clock_counts_not_the_clients(env):
    env.offset = 3600
    status, _, body = call(env, "DescribeRegions")
    assert error_code(body)[0] == "RequestExpired"


def test_another_region_is_refused_with_the_right_one_named(env):
    status, _, body = raw(env, {"Action": "DescribeRegions", "Version": "2016-11-15"}, region="us-east-1")
    code, message, _ = error_code(body)
    assert status == 401 and code == "AuthFailure" and "condor-cloud" in message


@pytest.mark.parametrize("change", ["body", "query", "header", "method"])
def test_a_request_changed_after_signing_is_refused(env, change):
    url, headers, data = sign(env, {"Action": "DescribeRegions", "Version": "2016-11-15"})
    method = "POST"
    if change == "body":
        data = data.replace(b"DescribeRegions", b"DescribeImages")
    elif change == "query":
        url += "?Action=DescribeImages"
        data = data.replace(b"Action=DescribeRegions&", b"")
    elif change == "header":
        headers["X-Amz-Date"] = headers["X-Amz-Date"][:-2] + "01Z"
    else:
        method = "GET"
    status, _, body = send(env, method, url, headers, data)
    assert status in (401,) and error_code(body)[0] == "AuthFailure", body


def test_garbage_authorization_headers_are_auth_failures(env):
    for value in ("", "Basic YWxpY2U6eA==", "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host",
                  "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
                  "AWS4-HMAC-SHA256 Credential=%s/20200101/condor-cloud/ec2/aws4_request, SignedHeaders=x-amz-date, "
                  "Signature=%s" % (env.creds["alice"].id, "0" * 64), "\xff" * 300):
        status, _, body = send(env, "POST", "https://ec2.test:8773/", {"Authorization": value,
                                                                        "X-Amz-Date": "20200101T000000Z"},
                               b"Action=DescribeRegions&Version=2016-11-15")
        assert status == 401 and error_code(body)[0] == "AuthFailure", (value, body)


def test_an_unsigned_request_is_refused(env):
    status, _, body = send(env, "GET", "https://ec2.test:8773/?Action=DescribeRegions&Version=2016-11-15", {}, b"")
    code, message, _ = error_code(body)
    assert status == 401 and code == "AuthFailure" and "not signed" in message


def test_the_host_header_must_be_signed():
    with pytest.raises(sigv4.SignatureError, match="Host header must be signed"):
        sigv4.parse_signed_headers("x-amz-date")


def test_a_body_hash_header_must_match_the_body(env):
    url, headers, data = sign(env, {"Action": "DescribeRegions", "Version": "2016-11-15"},
                              headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    status, _, body = send(env, "POST", url, headers, data)
    assert status == 401 and "x-amz-content-sha256" in error_code(body)[1]


def test_temporary_credentials_are_refused(env):
    url, headers, data = sign(env, {"Action": "DescribeRegions", "Version": "2016-11-15"},
                              headers={"X-Amz-Security-Token": "token"})
    status, _, body = send(env, "POST", url, headers, data)
    assert status == 401 and "X-Amz-Security-Token" in error_code(body)[1]


# -- presigned (query string) requests ---------------------------------------------------------------------------
def presigned(env, expires=60, when=None, user="alice"):
    botocore = pytest.importorskip("botocore")
    from unittest import mock

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    assert botocore
    cred = env.creds[user]
    req = AWSRequest(method="GET", url="https://ec2.test:8773/?Action=DescribeRegions&Version=2016-11-15")
    when = when or datetime.datetime.now(datetime.timezone.utc)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4QueryAuth(Credentials(cred.id, cred.secret), "ec2", REGION, expires=expires).add_auth(req)
    return req.url, dict(req.headers)


def test_a_presigned_request_is_accepted(env):
    url, headers = presigned(env)
    status, _, body = send(env, "GET", url, headers, b"")
    assert status == 200, body


def test_an_expired_presigned_request_is_refused(env):
    url, headers = presigned(env, expires=60,
                             when=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=120))
    status, _, body = send(env, "GET", url, headers, b"")
    assert error_code(body)[0] == "RequestExpired"


def test_a_presigned_request_with_a_body_is_refused(env):
    url, headers = presigned(env)
    status, _, body = send(env, "POST", url, dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"}),
                           b"Action=RunInstances")
    assert status == 401 and "presigned" in error_code(body)[1]


def test_a_tampered_presigned_request_is_refused(env):
    url, headers = presigned(env)
    status, _, body = send(env, "GET", url.replace("DescribeRegions", "DescribeImages"), headers, b"")
    assert status == 401
