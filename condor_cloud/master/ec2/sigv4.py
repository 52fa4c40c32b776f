"""AWS Signature Version 4, checked on the server: the canonical request is rebuilt from the request as received,
exactly as the specification (and botocore, which signs every aws-cli, boto3 and Ansible request) defines it, then
signed with the stored secret (HMAC-SHA256 of the standard library) and compared in constant time.

Both forms are accepted: the Authorization header (what SDKs send) and a presigned query string (X-Amz-Algorithm,
X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Signature, X-Amz-Expires; a presigned URL is made before
any body is known, so a presigned request must carry none). Refused: a date more than MAX_SKEW seconds from the
server's clock (RequestExpired), another region or service in the credential scope, temporary credentials
(X-Amz-Security-Token: there is no STS here), a signed x-amz-content-sha256 that does not match the body (or
UNSIGNED-PAYLOAD), and a SignedHeaders list without host. Nothing about a secret is ever put into a message or a log.
Why not botocore on the server: it only signs (it has no verifier), and the standard library's hmac and hashlib are
all SigV4 needs; the tests check this code against AWS's test suite and against requests botocore signs.
"""

import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 15 * 60
MAX_EXPIRES = 7 * 24 * 3600
_AMZ_DATE_RE = re.compile(r"(\d{8})T(\d{6})Z")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_PRESIGN = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature",
            "X-Amz-Expires", "X-Amz-Security-Token"}


class SignatureError(Exception):
    """code: the EC2 error code (AuthFailure, RequestExpired); message: for the client."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _auth(message):
    return SignatureError("AuthFailure", message)


@dataclass(frozen=True)
class Request:
    """What the signature covers, as received: method, path (decoded, as WSGI's PATH_INFO), the raw query string,
    the headers (lower-case names; repeated headers joined with ','), and the body bytes."""
    method: str
    path: str
    query: str
    headers: dict
    body: bytes


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    date: str       # YYYYMMDD
    region: str
    service: str

    @property
    def scope(self):
        return "%s/%s/%s/aws4_request" % (self.date, self.region, self.service)


# -- the canonical request ---------------------------------------------------------------------------------------
def _encode(text):
    """URI-encode as SigV4 does: everything but A-Z a-z 0-9 - _ . ~, UTF-8, upper-case hex."""
    return quote(text, safe="-_.~")


def canonical_uri(path):
    """The path with '.'/'..' segments resolved and each segment encoded (botocore's normalization for
    every service but S3)."""
    if not path:
        return "/"
    segments = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def query_pairs(raw_query):
    """[(name, value)] of a raw query string, decoded ('+' stays '+': SigV4 clients encode a space as %20)."""
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((unquote(name, errors="strict"), unquote(value, errors="strict")))
    return pairs


def canonical_query(raw_query, drop=()):
    """Sorted, re-encoded name=value pairs (drop: names left out, X-Amz-Signature of a presigned request)."""
    encoded = sorted((_encode(n), _encode(v)) for n, v in query_pairs(raw_query) if n not in drop)
    return "&".join("%s=%s" % pair for pair in encoded)


def canonical_headers(headers, signed):
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise _auth("signed header %s is not in the request" % name)
        lines.append("%s:%s\n" % (name, " ".join(str(value).split())))
    return "".join(lines)


def canonical_request(request, signed, payload_hash, drop=()):
    return "\n".join([request.method.upper(), canonical_uri(request.path), canonical_query(request.query, drop),
                      canonical_headers(request.headers, signed), ";".join(signed), payload_hash])


def string_to_sign(amz_date, credential, creq):
    return "\n".join([ALGORITHM, amz_date, credential.scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def signing_key(secret, credential):
    key = ("AWS4" + secret).encode("utf-8")
    for part in (credential.date, credential.region, credential.service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(secret, amz_date, credential, creq):
    return hmac.new(signing_key(secret, credential), string_to_sign(amz_date, credential, creq).encode("utf-8"),
                    hashlib.sha256).hexdigest()


# -- parsing what the client sent ----------------------------------------------------------------------------
def parse_credential(text):
    parts = str(text).split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise _auth("the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request")
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise _auth("the credential's date must be YYYYMMDD")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def parse_signed_headers(text):
    names = str(text).split(";")
    if not names or any(not _HEADER_NAME_RE.fullmatch(n) for n in names) or names != sorted(set(names)):
        raise _auth("SignedHeaders must be lower-case header names, sorted, separated by ';'")
    if "host" not in names:
        raise _auth("the Host header must be signed")
    return names


def parse_authorization(header):
    """{'Credential', 'SignedHeaders', 'Signature'} of an AWS4-HMAC-SHA256 Authorization header."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != ALGORITHM:
        raise _auth("the request is not signed with %s (AWS Signature Version 4)" % ALGORITHM)
    fields = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in fields:
            raise _auth("malformed Authorization header")
        fields[name] = value.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise _auth("the Authorization header needs Credential, SignedHeaders and Signature")
    return fields


def parse_amz_date(text):
    m = _AMZ_DATE_RE.fullmatch(text or "")
    if not m:
        raise _auth("X-Amz-Date must be YYYYMMDDTHHMMSSZ")
    try:
        when = datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise _auth("X-Amz-Date is not a valid time") from None
    return when


def _date_of(headers):
    """(amz_date text, datetime) from X-Amz-Date, else from Date (RFC 7231)."""
    if headers.get("x-amz-date"):
        text = headers["x-amz-date"].strip()
        return text, parse_amz_date(text)
    if headers.get("date"):
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError, IndexError):
            raise _auth("the Date header is not a valid HTTP date") from None
        if when is None or when.tzinfo is None:
            raise _auth("the Date header is not a valid HTTP date")
        when = when.astimezone(datetime.timezone.utc)
        return when.strftime("%Y%m%dT%H%M%SZ"), when
    raise _auth("the request has no X-Amz-Date (or Date) header")


# -- verification -----------------------------------------------------------------------------------------------
def verify(request, lookup, now, region, service="ec2"):
    """Check request's signature. lookup(access_key_id) -> the secret, or None for an unknown key; now: a timezone-
    aware datetime. Returns the access key id; raises SignatureError."""
    try:
        params = dict(query_pairs(request.query))
    except UnicodeDecodeError:
        raise _auth("the query string is not valid UTF-8") from None
    header = request.headers.get("authorization")
    presigned = "X-Amz-Signature" in params or "X-Amz-Algorithm" in params
    if header and presigned:
        raise _auth("sign a request either with an Authorization header or in the query string, not both")
    if header:
        fields = parse_authorization(header)
        credential = parse_credential(fields["Credential"])
        signed = parse_signed_headers(fields["SignedHeaders"])
        given = fields["Signature"]
        amz_date, when = _date_of(request.headers)
        if "x-amz-security-token" in request.headers:
            raise _auth("temporary credentials (X-Amz-Security-Token) are not supported: use an access key")
        body_hash = hashlib.sha256(request.body).hexdigest()
        declared = request.headers.get("x-amz-content-sha256")
        if declared is not None and declared.strip() != body_hash:
            raise _auth("x-amz-content-sha256 does not match the request body (an unsigned payload is not accepted)")
        payload_hash, drop = body_hash, ()
        if abs((now - when).total_seconds()) > MAX_SKEW:
            raise SignatureError("RequestExpired", "Request has expired: its time %s is more than %d minutes from "
                                 "the server's %s" % (amz_date, MAX_SKEW // 60, now.strftime("%Y%m%dT%H%M%SZ")))
    elif presigned:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise _auth("X-Amz-Algorithm must be %s" % ALGORITHM)
        for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"):
            if not params.get(name):
                raise _auth("a presigned request needs %s" % name)
        if "X-Amz-Security-Token" in params:
            raise _auth("temporary credentials (X-Amz-Security-Token) are not supported: use an access key")
        if request.body:
            raise _auth("a presigned request must carry its parameters in the query string (its body is not signed)")
        credential = parse_credential(params["X-Amz-Credential"])
        signed = parse_signed_headers(params["X-Amz-SignedHeaders"])
        given = params["X-Amz-Signature"]
        amz_date = params["X-Amz-Date"]
        when = parse_amz_date(amz_date)
        expires = params.get("X-Amz-Expires", "")
        if expires and (not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES):
            raise _auth("X-Amz-Expires must be 1 to %d seconds" % MAX_EXPIRES)
        lifetime = int(expires) if expires else MAX_SKEW
        age = (now - when).total_seconds()
        if age > lifetime or age < -MAX_SKEW:
            raise SignatureError("RequestExpired", "Request has expired: signed at %s, valid for %d seconds"
                                 % (amz_date, lifetime))
        # As botocore's SigV4QueryAuth (UNSIGNED-PAYLOAD is S3's): the hash of the (empty) body.
        payload_hash, drop = hashlib.sha256(request.body).hexdigest(), ("X-Amz-Signature",)
    else:
        raise _auth("the request is not signed: send an AWS Signature Version 4 Authorization header (aws-cli, "
                    "boto3 and Ansible do with an access key: see docs/EC2.txt)")

    if credential.date != amz_date[:8]:
        raise _auth("the credential's date %s is not the request's date %s" % (credential.date, amz_date[:8]))
    if credential.service != service:
        raise _auth("the credential is scoped to service '%s', not '%s'" % (credential.service[:40], service))
    if credential.region != region:
        raise _auth("the credential is scoped to region '%s'; this cloud's region is '%s' (aws configure set region "
                    "%s)" % (credential.region[:64], region, region))
    if not _SIGNATURE_RE.fullmatch(given):
        raise _auth("the signature must be 64 lower-case hex digits")
    secret = lookup(credential.access_key_id)
    if secret is None:
        raise _auth("AWS was not able to validate the provided access credentials: unknown access key")
    creq = canonical_request(request, signed, payload_hash, drop)
    expected = signature(secret, amz_date, credential, creq)
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
        raise _auth("AWS was not able to validate the provided access credentials: the signature does not match "
                    "(wrong secret, or the request was changed after signing)")
    return credential.access_key_id
