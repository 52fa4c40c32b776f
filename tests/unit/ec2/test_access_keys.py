"""Access keys: the file (format, atomic rewrite, mode and owner, damaged content), `condor-cloud user access-key`,
the browser page /api/access_keys (own keys only, secret shown once, CSRF), and the EC2 server's settings."""

import json
import os
import re
import stat

import pytest
from click.testing import CliRunner

from condor_cloud.master import access_keys as ak
from condor_cloud.master import cli
from condor_cloud.master.access_keys import AccessKeyStore, NoSuchAccessKey
from condor_cloud.core.errors import CloudError


@pytest.fixture
def store(tmp_path):
    return AccessKeyStore(str(tmp_path / "ec2" / "access-keys"))


def test_create_list_delete(store):
    a1 = store.create("alice", now=100)
    a2 = store.create("alice", now=200)
    b = store.create("bob")
    assert re.fullmatch(r"AKCC[A-Z2-7]{16}", a1.id) and len(a1.secret) == 40 and a1.id != a2.id
    assert [k.id for k in store.list("alice")] == [a1.id, a2.id]
    assert store.get(b.id).secret == b.secret and store.get("AKCCNOTAKEYNOTAKEY22") is None
    with pytest.raises(NoSuchAccessKey):
        store.delete(b.id, user="alice")          # another user's key: as if missing
    assert store.delete(a1.id, user="alice").id == a1.id
    assert [k.id for k in store.list()] == [a2.id, b.id]
    assert store.delete_user("alice") == 1 and store.list("alice") == []


def test_the_secret_never_shows_in_a_repr_or_the_public_view(store):
    key = store.create("alice")
    assert key.secret not in repr(key) and key.secret not in json.dumps(key.public())


def test_limit_per_user(store):
    for _ in range(ak.MAX_PER_USER):
        store.create("alice")
    with pytest.raises(CloudError, match="delete one first"):
        store.create("alice")
    store.create("bob")


def test_bad_user_names_are_refused(store):
    for name in ("Alice", "a:b", "", "x" * 40, "../x"):
        with pytest.raises(CloudError):
            store.create(name)
    assert not os.path.exists(store.path)


def test_file_format_mode_and_atomic_rewrite(store):
    key = store.create("alice", now=1700000000)
    text = open(store.path).read()
    assert "%s:alice:1700000000:%s\n" % (key.id, key.secret) in text
    st = os.stat(store.path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.dirname(store.path)).st_mode) == 0o750
    os.chmod(store.path, 0o666)        # an administrator's mistake is not kept: never world-readable
    store.create("bob")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o660
    assert os.stat(store.path).st_ino != st.st_ino      # replaced by rename, never rewritten in place
    assert sorted(os.listdir(os.path.dirname(store.path))) == ["access-keys", "access-keys.lock"]


def test_a_new_file_takes_its_directorys_owner(store, monkeypatch):
    os.makedirs(os.path.dirname(store.path), mode=0o750)
    calls = []
    monkeypatch.setattr(os, "stat", _fake_dir_owner(os.stat, os.path.dirname(store.path), 4242, 4343))
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
    store.create("alice")
    assert calls == [(4242, 4343)]


def _fake_dir_owner(real, directory, uid, gid):
    def fake(path, *a, **kw):
        st = real(path, *a, **kw)
        if path == directory:
            values = list(st)
            values[stat.ST_UID], values[stat.ST_GID] = uid, gid
            return os.stat_result(values)
        return st
    return fake


def test_a_damaged_file_is_an_internal_error_and_is_not_rewritten(store):
    store.create("alice")
    with open(store.path, "a") as f:
        f.write("AKCCAAAAAAAAAAAAAAAA:alice:1:short\n")
    before = open(store.path).read()
    with pytest.raises(CloudError) as exc:
        store.load()
    assert exc.value.code == 16 and "line 3" in str(exc.value)
    with pytest.raises(CloudError):
        store.create("bob")
    assert open(store.path).read() == before


def test_reads_are_cached_until_the_file_changes(store):
    key = store.create("alice")
    assert store.get(key.id)
    other = AccessKeyStore(store.path)
    other.delete(key.id)
    assert store.get(key.id) is None


# -- the CLI -----------------------------------------------------------------------------------------------------
@pytest.fixture
def knobs(cloud, tmp_path):
    from condor_cloud.master.users import UserFile, hash_password

    users = tmp_path / "users"
    users.write_text("alice:user:%s\n" % hash_password("alice-password", n=1024))
    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_EC2_ACCESS_KEYS = %s\n" % (users, tmp_path / "ec2" / "keys"))
    assert UserFile(str(users)).get("alice")
    return tmp_path / "ec2" / "keys"


def test_cli_create_list_delete(knobs):
    runner = CliRunner()
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "alice", "--json"])
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["user"] == "alice" and len(created["secret"]) == 40
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "alice"])
    assert r.exit_code == 0 and "aws_secret_access_key = " in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "list", "alice"])
    assert r.exit_code == 0 and created["id"] in r.output and created["secret"] not in r.output
    listed = json.loads(runner.invoke(cli.main_group, ["user", "access-key", "list", "--json"]).output)
    assert len(listed) == 2 and all("secret" not in k for k in listed)
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", created["id"]])
    assert r.exit_code == 0 and "deleted" in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", created["id"]])
    assert r.exit_code == 1 and "no access key" in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", "--all"])
    assert r.exit_code == 0 and "deleted 1 access key of alice" in r.output


def test_cli_refuses_unknown_users_and_bad_usage(knobs):
    runner = CliRunner()
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "mallory"])
    assert r.exit_code == 1 and "no user mallory" in r.output and not knobs.exists()
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice"])
    assert r.exit_code == 1 and "either KEY_ID or --all" in r.output


# -- the browser page (the Deltacloud API's app) -----------------------------------------------------------------
@pytest.fixture
def web(tmp_path, mocker, monkeypatch):
    from api.conftest import env as api_env

    e = api_env.__wrapped__(tmp_path, mocker, monkeypatch)
    e.access = AccessKeyStore(str(tmp_path / "ec2" / "access-keys"))
    e.app.extensions["condor_cloud"]["access_keys"] = e.access
    return e


def test_page_create_shows_the_secret_once_and_lists_only_own_keys(web):
    from api.conftest import browser, login

    other = web.access.create("bob")
    token = login(web.client)
    r = web.client.post("/api/access_keys", data={"csrf_token": token}, headers=browser())
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    page = r.get_data(as_text=True)
    (key,) = web.access.list("alice")
    assert key.id in page and key.secret in page and other.id not in page
    page = web.client.get("/api/access_keys", headers=browser(origin=None)).get_data(as_text=True)
    assert key.id in page and key.secret not in page and other.id not in page
    # bob's key cannot be deleted through alice's session
    r = web.client.post("/api/access_keys/%s/destroy" % other.id, data={"csrf_token": token}, headers=browser())
    assert r.status_code == 404 and web.access.get(other.id)
    r = web.client.post("/api/access_keys/%s/destroy" % key.id, data={"csrf_token": token}, headers=browser())
    assert r.status_code == 303 and web.access.list("alice") == []


def test_page_needs_the_csrf_token(web):
    from api.conftest import browser, login

    login(web.client)
    r = web.client.post("/api/access_keys", data={}, headers=browser())
    assert r.status_code == 403 and web.access.list("alice") == []


def test_programs_use_it_with_basic_auth(web):
    from api.conftest import jsonh

    r = web.client.post("/api/access_keys", headers=jsonh("alice"))
    assert r.status_code == 201
    created = r.get_json()["access_key"]
    assert web.access.get(created["id"]).secret == created["secret"]
    listed = web.client.get("/api/access_keys", headers=jsonh("alice")).get_json()["access_keys"]
    assert [k["id"] for k in listed] == [created["id"]] and "secret" not in listed[0]
    assert web.client.get("/api/access_keys", headers=jsonh("bob")).get_json()["access_keys"] == []
    assert web.client.delete("/api/access_keys/" + created["id"], headers=jsonh("bob")).status_code == 404
    assert web.client.delete("/api/access_keys/" + created["id"], headers=jsonh("alice")).status_code == 204
    xml = web.client.get("/api/access_keys", headers={**jsonh("alice"), "Accept": "application/xml"})
    assert xml.status_code == 200 and b"<access_keys>" in xml.data
    assert web.client.get("/api/access_keys").status_code == 401


# -- settings and the server ---------------------------------------------------------------------------------
def test_ec2_knobs(cloud):
    from condor_cloud.master.ec2.config import load_ec2_settings

    s = load_ec2_settings(reload=True)
    assert (s.listen, s.workers, s.region, s.access_keys, s.terminated_seconds, s.max_count) == (
        ("0.0.0.0", 8773), 2, "condor-cloud", "/var/lib/condor-cloud/ec2/access-keys", 3600, 10)
    cloud.write_config("CLOUD_EC2_LISTEN = 127.0.0.1:9999\nCLOUD_EC2_REGION = lab-1\n")
    s = load_ec2_settings(reload=True)
    assert s.listen == ("127.0.0.1", 9999) and s.region == "lab-1"
    for bad, why in (("CLOUD_EC2_LISTEN = 8773", "CLOUD_EC2_LISTEN must be ADDRESS:PORT"),
                     ("CLOUD_EC2_REGION = Not_A_Region", "CLOUD_EC2_REGION"),
                     ("CLOUD_EC2_TERMINATED_SECONDS = 60", "at least 3600"),
                     ("CLOUD_EC2_MAX_COUNT = 0", "at least 1")):
        cloud.write_config(bad + "\n")
        with pytest.raises(CloudError, match=why):
            load_ec2_settings(reload=True)


def test_the_server_serves_the_ec2_app_with_the_apis_tls_settings(cloud, monkeypatch):
    from condor_cloud.master.api import server as api_server
    from condor_cloud.master.ec2 import server

    cloud.write_config("CLOUD_API_PLAIN_HTTP = true\nCLOUD_EC2_LISTEN = 127.0.0.1:18773\n")
    served = []
    monkeypatch.setattr(api_server, "serve", lambda *a: served.append(a))
    monkeypatch.setattr(api_server, "gunicorn_tls_options", lambda settings: {"certfile": "c", "keyfile": "k"})
    assert server.main() == 0
    app, listen, workers, options, name = served[0]
    assert type(app).__name__ == "Ec2App" and listen == ("127.0.0.1", 18773) and workers == 2
    assert options == {"certfile": "c", "keyfile": "k"} and name == "condor-cloud-ec2"


def test_the_server_refuses_to_start_without_a_certificate(cloud, capsys):
    from condor_cloud.master.ec2 import server

    cloud.write_config("CLOUD_API_TLS_CERT = /nonexistent/c.pem\nCLOUD_API_TLS_KEY = /nonexistent/k.pem\n")
    assert server.main() == 1
    assert "condor-cloud-ec2: cannot read the API's TLS certificate" in capsys.readouterr().err
