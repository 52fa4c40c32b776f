"""The API server serves HTTPS by default (gunicorn's own TLS): its settings, its refusal to start without a usable
certificate, and a real gunicorn (sync workers) answering HTTPS while plain HTTP, a wrong CA and TLS 1.1 fail.
Also `condor-cloud api-cert create|show` and the one place the defaults live (config.py DEFAULTS = config.d)."""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings

import pytest
from click.testing import CliRunner

from condor_cloud.master import cli
from condor_cloud.master import config
from condor_cloud.master.api import server
from condor_cloud.master.config import DEFAULTS, ApiSettings, load_api_settings, parse_profiles
from condor_cloud.core.errors import CloudError

pytest.importorskip("cryptography")

from condor_cloud.master import tls  # noqa: E402

from support import REPO



def settings(**kw):
    base = dict(image_store="/nonexistent", listen=("0.0.0.0", 3002), workers=1, users_file="/nonexistent/users",
                keys_dir="/nonexistent/keys", profiles=parse_profiles("small:512:1"), max_user_data=16384,
                realm="Condor Cloud", schedd="")
    base.update(kw)
    return ApiSettings(**base)


@pytest.fixture
def pair(tmp_path):
    cert, key = str(tmp_path / "api.crt"), str(tmp_path / "api.key")
    info = tls.create(cert, key, ["localhost"], ["127.0.0.1"], days=30, group=None)
    return cert, key, info


# -- the one place of the defaults ----------------------------------------------------------------------------
def test_config_snippet_shows_exactly_the_defaults():
    with open(os.path.join(REPO, "config.d", "25condor_cloud_api.config")) as f:
        shown = dict(re.match(r"(\w+)\s*=\s*(.*?)\s*$", line).groups() for line in f
                     if line.strip() and not line.startswith("#"))
    assert shown == DEFAULTS
    assert DEFAULTS["CLOUD_API_PLAIN_HTTP"] == "false"


def test_tls_knobs(cloud):
    loaded = load_api_settings(reload=True)
    assert (loaded.tls_cert, loaded.tls_key, loaded.plain_http, loaded.scheme) == (
        "/etc/condor-cloud/tls/api.crt", "/etc/condor-cloud/tls/api.key", False, "https")
    cloud.write_config("CLOUD_API_PLAIN_HTTP = True\nCLOUD_API_TLS_CERT = /x/c.pem\nCLOUD_API_TLS_KEY = /x/k.pem\n")
    loaded = load_api_settings(reload=True)
    assert (loaded.tls_cert, loaded.tls_key, loaded.plain_http, loaded.scheme) == ("/x/c.pem", "/x/k.pem", True, "http")
    cloud.write_config("CLOUD_API_PLAIN_HTTP = sometimes\n")
    with pytest.raises(CloudError, match="CLOUD_API_PLAIN_HTTP must be true or false, not 'sometimes'"):
        load_api_settings(reload=True)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.0.2.1", False), ("master.example.org", False)])
def test_is_loopback(host, loopback):
    assert config.is_loopback(host) is loopback


# -- gunicorn's settings and the refusal to start ----------------------------------------------------------------
def test_https_options(pair):
    cert, key, _ = pair
    options = server.gunicorn_tls_options(settings(tls_cert=cert, tls_key=key))
    assert options == {"certfile": cert, "keyfile": key, "ssl_context": server.modern_tls, "forwarded_allow_ips": ""}


def test_plain_http_only_when_turned_on(pair):
    assert server.gunicorn_tls_options(settings(plain_http=True, tls_cert="/missing", tls_key="/missing")) == {}


def test_no_certificate_no_server(tmp_path, mocker, capsys):
    missing = settings(tls_cert=str(tmp_path / "api.crt"), tls_key=str(tmp_path / "api.key"))
    mocker.patch("condor_cloud.master.config.load_api_settings", return_value=missing)
    run = mocker.patch("gunicorn.app.base.BaseApplication.run")
    assert server.main() == 1
    err = capsys.readouterr().err
    assert "cannot read the API's TLS certificate %s" % missing.tls_cert in err
    assert "'condor-cloud api-cert create'" in err and "CLOUD_API_PLAIN_HTTP = true" in err
    assert not run.called


@pytest.mark.parametrize("host, level", [("127.0.0.1", "INFO"), ("0.0.0.0", "WARNING"), ("192.0.2.1", "WARNING")])
def test_plain_http_off_loopback_is_a_warning(caplog, host, level):
    caplog.set_level("INFO", "condor_cloud.master.api.server")
    server._announce(settings(plain_http=True, listen=(host, 3002)))
    (record,) = caplog.records
    assert record.levelname == level and "serving plain HTTP on http://%s:3002/api" % host in record.message
    assert ("in clear" in record.message) == (level == "WARNING")


def test_https_start_shows_the_fingerprint(caplog, pair):
    cert, key, info = pair
    caplog.set_level("INFO", "condor_cloud.master.api.server")
    server._announce(settings(tls_cert=cert, tls_key=key, listen=("::", 3002)))
    assert "serving HTTPS on https://[::]:3002/api" in caplog.text and info.sha256 in caplog.text


def test_modern_tls_never_below_tls12():
    def factory():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED   # what an old Python or policy may give
        return context

    assert server.modern_tls(None, factory).minimum_version == ssl.TLSVersion.TLSv1_2


# -- condor-cloud api-cert -----------------------------------------------------------------------------------------
@pytest.fixture
def run_cli(cloud, tmp_path):
    cloud.write_config("CLOUD_API_TLS_CERT = %s\nCLOUD_API_TLS_KEY = %s\nCLOUD_API_LISTEN = 0.0.0.0:3443\n"
                       % (tmp_path / "tls" / "api.crt", tmp_path / "tls" / "api.key"))
    runner = CliRunner()
    group = __import__("grp").getgrgid(os.getegid()).gr_name

    def invoke(*args):
        if args[:1] == ("create",) and os.geteuid() != 0:
            pytest.skip("the key's chown to root needs root")
        args = list(args) + (["--group", group] if args[:1] == ("create",) else [])
        return runner.invoke(cli.main_group, ["api-cert"] + args, catch_exceptions=False)

    return invoke


def test_api_cert_create_show_and_keep(run_cli, tmp_path):
    r = run_cli("create", "--host", "master.example.org", "--address", "192.0.2.10")
    assert r.exit_code == 0, r.output
    cert = str(tmp_path / "tls" / "api.crt")
    info = tls.describe(cert)
    assert info.names == ("master.example.org",) and info.addresses == ("192.0.2.10",)
    assert "created %s" % cert in r.output and info.sha256 in r.output and "sha256//" + info.spki_sha256 in r.output
    assert "curl --cacert %s -u USER https://master.example.org:3443/api" % cert in r.output
    shown = json.loads(run_cli("show", "--json").output)
    assert shown["sha256_fingerprint"] == info.sha256 and shown["names"] == ["master.example.org"]
    # Again: refused (clients trust this one); --if-missing keeps it; --force replaces it.
    r = run_cli("create")
    assert r.exit_code == 1 and "exists already" in r.output
    r = run_cli("create", "--if-missing", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["sha256_fingerprint"] == info.sha256
    assert json.loads(r.output)["action"] == "kept"
    r = run_cli("create", "--force", "--host", "localhost")
    assert r.exit_code == 0 and tls.describe(cert).sha256 != info.sha256
    assert run_cli("create", "--force", "--if-missing").exit_code != 0


def test_api_cert_if_missing_never_invents_the_administrators_own_files(run_cli, tmp_path, monkeypatch):
    # CLOUD_API_TLS_CERT/KEY name files of the administrator (here: not the defaults) that are not there: the
    # service's start must fail on them, not run with a new self-signed certificate.
    r = run_cli("create", "--if-missing")
    assert r.exit_code == 1 and "not creating a self-signed certificate there" in r.output
    assert not (tmp_path / "tls").exists()
    # At the default paths a missing pair is the first start: it is created.
    monkeypatch.setitem(DEFAULTS, "CLOUD_API_TLS_CERT", str(tmp_path / "tls" / "api.crt"))
    monkeypatch.setitem(DEFAULTS, "CLOUD_API_TLS_KEY", str(tmp_path / "tls" / "api.key"))
    r = run_cli("create", "--if-missing")
    assert r.exit_code == 0 and "created" in r.output
    tls.check_pair(str(tmp_path / "tls" / "api.crt"), str(tmp_path / "tls" / "api.key"))


def test_api_cert_bad_input(run_cli, tmp_path):
    r = run_cli("create", "--address", "not-an-address")
    assert r.exit_code == 1 and "'not-an-address' is not an IP address" in r.output
    assert not (tmp_path / "tls").exists()
    r = run_cli("show")
    assert r.exit_code == 1 and "'condor-cloud api-cert create'" in r.output


# -- a real gunicorn ---------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_server(cloud, pair, tmp_path):
    """condor-cloud-api (python -m condor_cloud.master.api.server) on a free loopback port with the pair; yields
    (port, cert) and stops it."""
    pytest.importorskip("gunicorn")
    cert, key, _ = pair
    port = free_port()
    cloud.write_config("CLOUD_API_LISTEN = 127.0.0.1:%d\nCLOUD_API_WORKERS = 1\nCLOUD_API_USERS = %s\n"
                       "CLOUD_API_KEYS_DIR = %s\nCLOUD_API_TLS_CERT = %s\nCLOUD_API_TLS_KEY = %s\n"
                       % (port, tmp_path / "users", tmp_path / "keys", cert, key))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    log_path = str(tmp_path / "server.log")
    with open(log_path, "a") as log:   # O_APPEND: the server's workers share it
        proc = subprocess.Popen([sys.executable, "-m", "condor_cloud.master.api.server"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    def read_log():
        with open(log_path, errors="replace") as f:
            return f.read()

    try:
        end = time.time() + 30
        while time.time() < end and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, read_log()
        yield port, cert, read_log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(url, context=None, headers=None):
    req = urllib.request.Request(url, headers=dict({"Accept": "application/json"}, **(headers or {})))
    with urllib.request.urlopen(req, timeout=20, context=context) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.subprocess
def test_gunicorn_serves_https_only(api_server, tmp_path):
    port, cert, read_log = api_server
    trusted = ssl.create_default_context(cafile=cert)
    status, body = get("https://127.0.0.1:%d/api" % port, trusted)
    links = [link["href"] for link in body["api"]["links"]]
    assert status == 200 and "https://127.0.0.1:%d/api/instances" % port in links
    # Links stay https even if a (loopback) client claims the request came through a plain-HTTP proxy.
    status, body = get("https://localhost:%d/api" % port, trusted, {"X-Forwarded-Proto": "http"})
    links = [link["href"] for link in body["api"]["links"]]
    assert "https://localhost:%d/api/instances" % port in links and all(h.startswith("https://") for h in links)
    # Plain HTTP on the same port gets no HTTP answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)) as exc:
        get("http://127.0.0.1:%d/api" % port)
    assert not isinstance(exc.value, urllib.error.HTTPError)
    # A client that trusts another certificate (or only the system's CAs) refuses the server.
    other = tls.create(str(tmp_path / "o.crt"), str(tmp_path / "o.key"), ["localhost"], ["127.0.0.1"], group=None)
    for context in (ssl.create_default_context(cafile=other.path), ssl.create_default_context()):
        with pytest.raises(urllib.error.URLError) as exc:
            get("https://127.0.0.1:%d/api" % port, context)
        assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)
    assert "serving HTTPS on https://127.0.0.1:%d/api" % port in read_log()
    # Nothing below TLS 1.2 (a client offering only TLS 1.1 fails the handshake).
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cert)
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises(urllib.error.URLError, match="PROTOCOL_VERSION|protocol version"):
        get("https://127.0.0.1:%d/api" % port, old)


@pytest.mark.subprocess
def test_server_refuses_to_start_without_certificate(cloud, tmp_path):
    cloud.write_config("CLOUD_API_LISTEN = 127.0.0.1:%d\nCLOUD_API_TLS_CERT = %s\nCLOUD_API_TLS_KEY = %s\n"
                       % (free_port(), tmp_path / "api.crt", tmp_path / "api.key"))
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "condor_cloud.master.api.server"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 1
    assert "condor-cloud-api: cannot read the API's TLS certificate %s" % (tmp_path / "api.crt") in p.stderr
    assert "'condor-cloud api-cert create'" in p.stderr
