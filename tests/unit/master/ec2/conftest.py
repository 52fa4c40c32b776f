"""Fixtures of the EC2 API tests: the application with a store, users, SSH keys, access keys and a fake schedd
(the Deltacloud API tests' FakeSchedd plus history and edit; constraints are evaluated by the real classad2).

`ec2(user)` is a real boto3 EC2 client whose requests never leave the process: a before-send hook hands botocore's
signed request to the WSGI application (werkzeug's test client) and botocore parses the answer, so every test
through it exercises botocore's own serializer, SigV4 signer, XML parser, waiters and paginators. `raw(...)` sends
hand-made requests, signed by botocore's SigV4Auth (or, without botocore, by the server's own functions)."""

import datetime
import io
import time
from urllib.parse import urlencode, urlsplit

import pytest

from werkzeug.test import Client

from condor_cloud.master.access_keys import AccessKeyStore
from condor_cloud.master.config import ApiSettings, parse_profiles
from condor_cloud.master.ec2 import create_app
from condor_cloud.master.ec2.config import Ec2Settings
from condor_cloud.master.ec2.jobs import Ec2Jobs
from condor_cloud.master.keys import KeyStore
from condor_cloud.master.users import UserFile

from support import FakeSchedd, cheap_hashes, make_api_store

ENDPOINT = "https://ec2.test:8773"
REGION = "condor-cloud"


class FakeEc2Schedd(FakeSchedd):
    """FakeSchedd + history (ads that left the queue) and edit; submit fills in EnteredCurrentStatus."""

    def __init__(self):
        super().__init__()
        self.done = []
        self.edits = []
        self.history_calls = []
        self.clock = time.time

    def submit(self, description, count=0, spool=False, **kw):
        result = super().submit(description, count, spool, **kw)
        self.jobs[-1]["EnteredCurrentStatus"] = int(self.clock())
        self.jobs[-1]["QDate"] = int(self.clock())
        self.jobs[-1]["GlobalJobId"] = "master.example.org#%d.0#%d" % (self.jobs[-1]["ClusterId"], int(self.clock()))
        return result

    def act(self, action, job_spec, reason=None):
        result = super().act(action, job_spec, reason)
        cluster = int(job_spec.split(".")[0])
        for ad in self.jobs:
            if ad["ClusterId"] == cluster:
                ad["EnteredCurrentStatus"] = int(self.clock())
                ad["RemoveReason"] = reason or ""
        return result

    def history(self, constraint=None, projection=(), match=-1, since=None):
        self._check()
        self.history_calls.append((constraint, list(projection), match, since))
        expr = self.classad2.ExprTree(constraint or "true")
        return [ad for ad in reversed(self.done) if expr.eval(ad) is True]

    def edit(self, job_spec, attr, value, flags=0):
        self._check()
        self.edits.append((job_spec, attr, value))
        cluster, proc = (int(x) for x in job_spec.split("."))
        for ad in self.jobs:
            if ad["ClusterId"] == cluster and ad["ProcId"] == proc:
                ad[attr] = self.classad2.ExprTree(value).eval()
                return 1
        return 0

    def finish(self, cluster, status=3, ago=0):
        """The job leaves the queue (removed: 3, completed: 4) ago seconds ago."""
        for ad in list(self.jobs):
            if ad["ClusterId"] == cluster:
                ad["JobStatus"] = status
                ad["EnteredCurrentStatus"] = int(self.clock()) - ago
                self.jobs.remove(ad)
                self.done.append(ad)


class RawResponse(io.BytesIO):
    def stream(self, **kwargs):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


@pytest.fixture
def env(tmp_path, mocker, monkeypatch):
    from condor_cloud.master import users as users_mod

    class Env:
        pass

    e = Env()
    e.store = make_api_store(tmp_path)
    api = ApiSettings(image_store=str(e.store), listen=("127.0.0.1", 3002), workers=1,
                      users_file=str(tmp_path / "users"), keys_dir=str(tmp_path / "keys"),
                      profiles=parse_profiles("small:512:1 medium:1024:2 large:2048:4:20"), max_user_data=1024,
                      realm="Condor Cloud", schedd="")
    e.settings = Ec2Settings(api=api, region=REGION, access_keys=str(tmp_path / "ec2" / "access-keys"),
                             max_count=3)
    monkeypatch.setattr(users_mod, "SCRYPT_N", 1024)
    (tmp_path / "users").write_text("".join("%s:%s:%s\n" % (name, "admin" if name == "root_" else "user", h)
                                            for name, h in cheap_hashes().items()))
    e.users = UserFile(api.users_file, group=None)
    e.keys = KeyStore(api.keys_dir)
    e.access = AccessKeyStore(e.settings.access_keys)
    e.creds = {name: e.access.create(name) for name in ("alice", "bob", "root_")}
    e.schedd = FakeEc2Schedd()
    e.factory = mocker.Mock(side_effect=lambda: e.schedd)
    e.jobs = Ec2Jobs(e.factory, submitter="condor-cloud-api")
    e.offset = 0     # seconds the server's clock is ahead of the client's
    e.lock_dir = tmp_path / "run"
    e.lock_dir.mkdir()
    e.app = create_app(settings=e.settings, users=e.users, keys=e.keys, access_keys=e.access, jobs=e.jobs,
                       clock=lambda: time.time() + e.offset, lock_dir=str(e.lock_dir))
    e.client = Client(e.app)
    e.console = {}
    e.console_timeouts = []

    def console(self, info, max_bytes, timeout=60):
        e.console_timeouts.append(timeout)
        text = e.console.get(info.cluster, "")
        if isinstance(text, Exception):
            raise text
        return text

    monkeypatch.setattr(Ec2Jobs, "console", console)
    return e


def send(env, method, url, headers, body):
    """(status, headers, body) of a request given to the application as it would arrive."""
    parts = urlsplit(url)
    headers = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers.items()
               if k.lower() not in ("host", "content-length")}
    r = env.client.open(parts.path or "/", base_url="%s://%s" % (parts.scheme, parts.netloc),
                        query_string=parts.query, method=method, headers=headers, data=body or b"")
    return r.status_code, r.headers, r.get_data()


@pytest.fixture
def ec2(env):
    """ec2(user="alice", secret=None): a boto3 EC2 client of user (secret: a wrong one, for refusals)."""
    boto3 = pytest.importorskip("boto3")
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    def make(user="alice", secret=None, key_id=None):
        cred = env.creds[user]
        client = boto3.client("ec2", region_name=REGION, endpoint_url=ENDPOINT,
                              aws_access_key_id=key_id or cred.id, aws_secret_access_key=secret or cred.secret,
                              config=Config(retries={"max_attempts": 1, "mode": "standard"}))

        def before_send(request, **kwargs):
            status, headers, body = send(env, request.method, request.url, dict(request.headers), request.body)
            return AWSResponse(request.url, status, dict(headers), RawResponse(body))

        client.meta.events.register("before-send.ec2", before_send)
        return client

    return make


def sign(env, params, user="alice", method="POST", secret=None, when=None, region=REGION, query=None,
         headers=None, body=None):
    """(url, headers, body) of a request signed as botocore signs it (own signer when botocore is missing)."""
    cred = env.creds[user]
    secret = secret or cred.secret
    when = when or datetime.datetime.now(datetime.timezone.utc)
    data = body if body is not None else urlencode(params).encode() if method == "POST" else b""
    url = ENDPOINT + "/" + ("?" + (query if query is not None else urlencode(params)) if method == "GET" or query
                            else "")
    hdrs = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"} if data else {}
    hdrs.update(headers or {})
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        return _own_sign(url, method, hdrs, data, cred.id, secret, when, region)
    from unittest import mock

    req = AWSRequest(method=method, url=url, data=data, headers=hdrs)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(cred.id, secret), "ec2", region).add_auth(req)
    return url, dict(req.headers), data


def _own_sign(url, method, headers, data, key_id, secret, when, region):
    import hashlib

    from condor_cloud.master.ec2 import sigv4

    parts = urlsplit(url)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    headers = dict(headers, **{"X-Amz-Date": amz_date})
    lower = {k.lower(): v for k, v in headers.items()}
    lower["host"] = parts.netloc
    signed = sorted(lower)
    request = sigv4.Request(method, parts.path or "/", parts.query, lower, data)
    cred = sigv4.Credential(key_id, amz_date[:8], region, "ec2")
    creq = sigv4.canonical_request(request, signed, hashlib.sha256(data).hexdigest())
    headers["Authorization"] = "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        sigv4.ALGORITHM, key_id, cred.scope, ";".join(signed), sigv4.signature(secret, amz_date, cred, creq))
    return url, headers, data


def raw(env, params, **kw):
    """(status, headers, body) of a signed request with these parameters (see sign)."""
    method = kw.get("method", "POST")
    url, headers, data = sign(env, params, **kw)
    return send(env, method, url, headers, data)


def call(env, action, user="alice", **params):
    """raw() of one action with Version; params as flat Query names."""
    base = {"Action": action, "Version": "2016-11-15"}
    base.update(params)
    return raw(env, base, user=user)


def error_code(body):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(body)
    assert root.tag == "Response", body
    return root.find("Errors/Error/Code").text, root.find("Errors/Error/Message").text, root.find("RequestID").text
