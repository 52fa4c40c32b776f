"""Failed logins are throttled per client and per user name, shared by the workers, without locking a good user
out (issue 11, item 8); credentials never reach the log, a damaged user file is a logged 500 (item 9)."""

import base64
import http.client
import threading
import xml.etree.ElementTree as ET

import pytest

from condor_cloud.master import users as users_mod
from condor_cloud.master.api import create_app, throttle
from condor_cloud.master.api.state import StateStore

from support import PASSWORDS, auth, browser, jsonh, login

ATTACKER = "127.0.0.2"
GOOD = "127.0.0.1"


def _get(env, user, password=None, addr=GOOD, path="/api/keys", client=None):
    return (client or env.client).get(path, headers=jsonh(user) if password is None else
                                      dict(auth(user, password), Accept="application/json"),
                                      environ_overrides={"REMOTE_ADDR": addr})


def _fail_until_throttled(env, addr=ATTACKER, user="alice", limit=50):
    statuses = [_get(env, user, "wrong-password", addr).status_code for _ in range(limit)]
    assert 429 in statuses, statuses
    return statuses


def test_a_flood_from_one_client_is_throttled_cheaply(env, mocker):
    statuses = _fail_until_throttled(env)
    first = statuses.index(429)
    assert statuses[:first] == [401] * first and first == throttle.CLIENT_LIMIT
    assert set(statuses[first:]) == {429}
    r = _get(env, "alice", "wrong-password", ATTACKER)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= throttle.CLIENT_WINDOW
    assert "try again in" in r.get_json()["message"]
    # A throttled request costs no password check at all.
    spy = mocker.spy(users_mod, "verify_password")
    for _ in range(20):
        assert _get(env, "bob", "wrong-password", ATTACKER).status_code == 429
    assert spy.call_count == 0


def test_a_throttled_client_cannot_test_guesses_against_the_success_cache(env):
    assert _get(env, "alice").status_code == 200  # alice's right password is now in the cache
    _fail_until_throttled(env)
    assert _get(env, "alice", PASSWORDS["alice"], ATTACKER).status_code == 429


def test_a_flood_against_a_name_does_not_lock_its_user_out(env):
    # Many addresses try alice's password until the name is over its limit, each until it is throttled itself.
    for i in range(3, 3 + 2 * throttle.NAME_LIMIT // throttle.CLIENT_LIMIT + 1):
        _fail_until_throttled(env, addr="127.0.0.%d" % i)
    # alice herself (no recent failures) still gets in, by Basic auth and by the login form ...
    assert _get(env, "alice").status_code == 200
    client = env.app.test_client()
    login(client, REMOTE_ADDR=GOOD)
    # ... even after a few typos of her own.
    for _ in range(throttle.NAME_GRACE - 1):
        assert _get(env, "alice", "typo-password").status_code == 401
    assert _get(env, "alice").status_code == 200
    # A client with more recent failures than that is refused for this name (not for others) ...
    other = "192.0.2.7"
    for _ in range(throttle.NAME_GRACE):
        assert _get(env, "alice", "wrong-password", other).status_code == 401
    assert _get(env, "alice", "wrong-password", other).status_code == 429
    assert _get(env, "bob", addr=other).status_code == 200


def test_a_session_is_never_throttled(env):
    client = env.app.test_client()
    login(client, REMOTE_ADDR=ATTACKER)
    _fail_until_throttled(env)
    r = client.get("/api/keys", headers={"Accept": "application/json"}, environ_overrides={"REMOTE_ADDR": ATTACKER})
    assert r.status_code == 200


def test_the_login_form_is_throttled_too(env):
    statuses = [env.client.post("/api/login", data={"username": "alice", "password": "wrong-password"},
                                headers=browser(), environ_overrides={"REMOTE_ADDR": ATTACKER}).status_code
                for _ in range(throttle.CLIENT_LIMIT + 1)]
    assert statuses == [401] * throttle.CLIENT_LIMIT + [429]
    r = env.client.post("/api/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                        headers=browser(), environ_overrides={"REMOTE_ADDR": ATTACKER})
    assert r.status_code == 429 and "Set-Cookie" not in r.headers and int(r.headers["Retry-After"]) >= 1
    assert "too many failed logins" in r.data.decode()
    assert _get(env, "alice", addr=GOOD).status_code == 200


def test_public_pages_render_anonymously_for_a_throttled_client(env):
    _fail_until_throttled(env)
    r = env.client.get("/api", headers=auth("alice"), environ_overrides={"REMOTE_ADDR": ATTACKER})
    assert r.status_code == 200 and ET.fromstring(r.data).tag == "api"
    assert env.client.get("/api?force_auth=1", headers=auth("alice"),
                          environ_overrides={"REMOTE_ADDR": ATTACKER}).status_code == 429


def test_the_counters_drain(env):
    now = [1_000_000.0]
    env.app.extensions["condor_cloud"]["throttle"].clock = lambda: now[0]
    _fail_until_throttled(env)
    retry = int(_get(env, "alice", "wrong-password", ATTACKER).headers["Retry-After"])
    now[0] += retry - 1
    assert _get(env, "alice", "wrong-password", ATTACKER).status_code == 429
    now[0] += 1.5
    assert _get(env, "alice", "wrong-password", ATTACKER).status_code == 401  # one more try, then throttled again
    assert _get(env, "alice", "wrong-password", ATTACKER).status_code == 429
    now[0] += throttle.CLIENT_WINDOW * 2
    assert _get(env, "alice", addr=ATTACKER).status_code == 200


def test_the_counters_are_shared_by_worker_processes(env, tmp_path):
    # A second application on the same state directory stands for gunicorn's second worker.
    other = create_app(settings=env.settings, users=env.users, keys=env.keys, jobs=env.jobs,
                       state=StateStore(str(tmp_path / "state"))).test_client()
    for i in range(throttle.CLIENT_LIMIT):
        client = env.client if i % 2 else other
        assert _get(env, "alice", "wrong-password", ATTACKER, client=client).status_code == 401
    assert _get(env, "alice", "wrong-password", ATTACKER, client=other).status_code == 429
    assert _get(env, "alice", "wrong-password", ATTACKER).status_code == 429


@pytest.mark.parametrize("address,key", [("192.0.2.1", "192.0.2.1"), ("::ffff:192.0.2.1", "192.0.2.1"),
                                         ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
                                         ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"), ("", "unknown"),
                                         (None, "unknown"), ("fe80::1%eth0", "fe80::/64")])
def test_client_key(address, key):
    assert throttle.client_key(address) == key


def test_real_http_flood_on_loopback(env):
    """A short, bounded flood over real sockets: the attacker on 127.0.0.2, the good user on 127.0.0.1."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def request(user, password, source):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        try:
            conn.request("GET", "/api/keys", headers={"Authorization": "Basic " + token,
                                                      "Accept": "application/json"})
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        flood = [request("alice", "wrong-password", ATTACKER) for _ in range(throttle.CLIENT_LIMIT + 5)]
        assert flood == [401] * throttle.CLIENT_LIMIT + [429] * 5
        assert request("alice", PASSWORDS["alice"], GOOD) == 200
        assert request("alice", PASSWORDS["alice"], ATTACKER) == 429
    finally:
        server.shutdown()
        thread.join(10)


# -- item 9: what is logged, damaged user file ---------------------------------------------------------------------------
def test_basic_credentials_without_colon_are_never_logged(env, caplog):
    secret = "Sup3r-secret-passw0rd"
    r = env.client.get("/api/keys", headers={"Authorization": "Basic " + base64.b64encode(secret.encode()).decode(),
                                             "Accept": "application/json"})
    assert r.status_code == 401
    assert "malformed" in caplog.text and secret not in caplog.text
    r = env.client.get("/api/keys", headers={"Authorization": "Basic !!" + secret, "Accept": "application/json"})
    assert r.status_code == 401 and secret not in caplog.text


def test_unknown_names_are_not_logged(env, caplog):
    # A name that is not a user may be a password typed into the wrong field.
    assert env.client.get("/api/keys", headers=auth("hunter2secret", "x" * 10)).status_code == 401
    assert env.client.get("/api/keys", headers=auth("alice", "wrong-password")).status_code == 401
    assert "hunter2secret" not in caplog.text and "unknown user name" in caplog.text
    assert "failed login for user alice" in caplog.text and "wrong-password" not in caplog.text


@pytest.mark.parametrize("fmt", ["application/xml", "application/json", "text/html"])
def test_a_damaged_user_file_is_a_logged_500_without_its_path(env, caplog, fmt):
    with open(env.settings.users_file, "a") as f:
        f.write("this line is damaged\n")
    r = env.client.get("/api/keys", headers=dict(auth("alice"), Accept=fmt))
    assert r.status_code == 500
    assert env.settings.users_file not in r.data.decode() and "users" not in r.data.decode()
    assert env.settings.users_file in caplog.text and "line" in caplog.text


def test_passwords_with_nul_never_match(env):
    assert env.client.get("/api/keys", headers=auth("alice", PASSWORDS["alice"] + "\0")).status_code == 401
    assert env.client.get("/api/keys", headers=auth("alice")).status_code == 200
