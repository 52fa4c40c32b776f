"""Browser pages: no framing, a strict Content-Security-Policy, login sessions, CSRF tokens and the cross-site rule
of csrf.py; programs (Basic auth, no fetch metadata) unchanged (issue 11, item 3)."""

import base64
import hashlib
import re

import pytest

from condor_cloud.master.api import create_app, sessions as sessions_mod
from condor_cloud.master.api.state import StateStore

from support import DEMO_ID, ED25519, ORIGIN, PASSWORDS, auth, browser, html, jsonh, login, xml

EVIL = "http://evil.example.com"


def _launch(env, token=None, **headers):
    data = {"image_id": DEMO_ID, "name": "csrf"}
    if token is not None:
        data["csrf_token"] = token
    return env.client.post("/api/instances", data=data, headers=headers)


# -- framing and content policy -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api", "/api/images", "/api/instances", "/api/keys", "/api/login",
                                  "/api/images/nothing"])
def test_pages_refuse_framing_and_run_nothing(env, path):
    login(env.client)
    r = env.client.get(path, headers=browser(origin=None))
    page = r.data.decode()
    assert r.headers["X-Frame-Options"] == "DENY"
    policy = dict(p.strip().split(" ", 1) for p in r.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'" and policy["base-uri"] == "'none'"
    assert "unsafe" not in r.headers["Content-Security-Policy"] and "script-src" not in policy
    # The one inline style sheet is allowed by its hash, and the page has no script at all.
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy["style-src"] == "'sha256-%s'" % digest
    assert "<script" not in page and " style=" not in page and not re.search(r"<[^>]+\son\w+=", page)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"


def test_api_answers_refuse_framing_too(env):
    r = env.client.get("/api/instances", headers=xml())
    assert r.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


# -- no Basic challenge for browsers ----------------------------------------------------------------------------
def test_html_401_is_the_login_form_without_basic_challenge(env):
    r = env.client.get("/api/instances?state=RUNNING", headers={"Accept": "text/html"})
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    page = r.data.decode()
    assert 'action="http://localhost/api/login"' in page and 'name="password"' in page
    assert 'name="next" value="/api/instances?state=RUNNING"' in page
    r = env.client.get("/api?force_auth=1", headers={"Accept": "text/html"})
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    # A wrong password on a page: the same.
    r = env.client.get("/api/keys", headers=html() | auth("alice", "wrong-password"))
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers


def test_programs_get_the_challenge_browsers_never(env):
    assert env.client.get("/api/instances", headers={"Accept": "application/xml"}).headers["WWW-Authenticate"] == \
        'Basic realm="Condor Cloud"'
    # A browser asking for XML or JSON (fetch metadata present) is never challenged either.
    r = env.client.get("/api/instances?format=xml", headers=browser(origin=None))
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers


# -- login ----------------------------------------------------------------------------------------------------
def test_login_sets_a_strict_httponly_cookie(env):
    r = env.client.post("/api/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                            "next": "/api/instances?state=RUNNING"}, headers=browser())
    assert r.status_code == 303 and r.headers["Location"] == "http://localhost/api/instances?state=RUNNING"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("condor_cloud_session=")
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain HTTP (the unit tests); see the next test
    page = env.client.get("/api/instances", headers=browser(origin=None)).data.decode()
    assert '<strong id="username">alice</strong>' in page and 'id="logout"' in page


def test_login_over_tls_sets_a_secure_cookie(env):
    client = env.app.test_client()
    r = client.post("/api/login", base_url="https://localhost", data={"username": "alice",
                                                                      "password": PASSWORDS["alice"]},
                    headers=browser(origin="https://localhost"))
    assert r.status_code == 303
    assert "secure" in [a.strip().lower() for a in r.headers["Set-Cookie"].split(";")]


def test_wrong_login_is_401_with_the_form(env):
    r = env.client.post("/api/login", data={"username": "alice", "password": "wrong-password"}, headers=browser())
    assert r.status_code == 401 and "Set-Cookie" not in r.headers and "WWW-Authenticate" not in r.headers
    assert "Wrong user name or password" in r.data.decode()


@pytest.mark.parametrize("headers", [
    {},                                                          # neither Origin nor Sec-Fetch-Site
    {"Origin": "null"},
    {"Origin": EVIL},
    {"Origin": "http://localhost:8080"},                         # another port: another origin
    {"Origin": "https://localhost"},                             # another scheme
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "none"},
])
def test_login_form_needs_a_same_origin_proof(env, headers):
    r = env.client.post("/api/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                        headers=dict(headers, Accept="text/html"))
    assert r.status_code == 403 and "Set-Cookie" not in r.headers


def test_login_with_sec_fetch_site_alone(env):
    r = env.client.post("/api/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                        headers=browser(origin=None))
    assert r.status_code == 303


@pytest.mark.parametrize("next_path", ["//evil.example.com/api", "https://evil.example.com/api", "/\\evil",
                                       "/apiary", "javascript:alert(1)", "/api\\..", "/api/\r\nX: y"])
def test_login_never_sends_you_to_another_site(env, next_path):
    r = env.client.post("/api/login", data={"username": "alice", "password": PASSWORDS["alice"],
                                            "next": next_path}, headers=browser())
    assert r.status_code == 303 and r.headers["Location"] == "http://localhost/api"


# -- state changes of a session -------------------------------------------------------------------------------------
def test_session_state_change_needs_the_token_and_a_same_origin_proof(env):
    token = login(env.client)
    refused = [
        _launch(env, None, **browser()),                                  # no token
        _launch(env, ("y" if token[0] == "x" else "x") + token[1:], **browser()),  # wrong token
        _launch(env, token, **browser(origin=None, site=None)),           # no Origin, no Sec-Fetch-Site
        _launch(env, token, **browser(origin="null", site=None)),         # Origin: null
        _launch(env, token, **browser(origin="null")),                    # Origin: null beats Sec-Fetch-Site
        _launch(env, token, **browser(origin=EVIL, site="cross-site")),
        _launch(env, token, **browser(origin=None, site="same-site")),    # e.g. another port of this host
        _launch(env, token, **browser(origin=None, site="none")),
        _launch(env, token, Accept="application/json"),                   # a script without fetch metadata
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert env.schedd.submitted == []
    # The token with Origin, or with Sec-Fetch-Site: same-origin alone.
    assert _launch(env, token, **browser()).status_code == 303
    assert _launch(env, token, **browser(origin=None)).status_code == 303
    assert _launch(env, token, **{"Accept": "application/json", "X-CSRF-Token": token,
                                  "Origin": ORIGIN}).status_code == 201
    assert len(env.schedd.submitted) == 3


def test_session_destroy_needs_the_token(env):
    token = login(env.client)
    inst = env.client.post("/api/instances", data={"image_id": DEMO_ID}, headers=jsonh()).get_json()["instance"]
    url = "/api/instances/%s/destroy" % inst["id"]
    assert env.client.post(url, headers=browser()).status_code == 403
    assert env.client.post(url, data={"csrf_token": token}, headers=browser(origin=None, site=None)).status_code == 403
    assert env.client.delete("/api/instances/" + inst["id"], headers=browser()).status_code == 403
    assert env.schedd.acts == []
    assert env.client.post(url, data={"csrf_token": token}, headers=browser()).status_code == 303
    assert len(env.schedd.acts) == 1


def test_every_form_of_a_session_carries_the_token(env):
    token = login(env.client)
    env.client.post("/api/keys", data={"name": "laptop", "public_key": ED25519,
                                       "csrf_token": token}, headers=browser())
    env.client.post("/api/instances", data={"image_id": DEMO_ID, "csrf_token": token}, headers=browser())
    (inst,) = env.client.get("/api/instances", headers=jsonh()).get_json()["instances"]
    for path in ("/api/images", "/api/images/" + DEMO_ID, "/api/instances", "/api/instances/" + inst["id"],
                 "/api/keys", "/api/keys/laptop"):
        page = env.client.get(path, headers=browser(origin=None)).data.decode()
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", page, re.S)
        assert len(forms) >= 2, path  # logout plus the page's own
        for form in forms:
            assert '<input type="hidden" name="csrf_token" value="%s">' % token in form, (path, form)


def test_basic_auth_pages_have_no_token_and_need_none(env):
    # Programs and Basic-auth page fetches: no session, no token; a same-origin form post with Basic works.
    page = env.client.get("/api/images", headers=html()).data.decode()
    assert "csrf_token" not in page and 'id="logout"' not in page
    r = env.client.post("/api/instances", data={"image_id": DEMO_ID}, headers=html() | {"Origin": ORIGIN})
    assert r.status_code == 303


# -- the cross-site rule, whatever the authentication -----------------------------------------------------------------
@pytest.mark.parametrize("meta", [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
])
def test_cross_site_posts_are_refused_with_basic_auth_too(env, meta):
    r = env.client.post("/api/instances", data={"image_id": DEMO_ID}, headers=dict(xml(), **meta))
    assert r.status_code == 403
    r = env.client.post("/api/keys", data={"name": "k", "public_key": "x"}, headers=dict(jsonh(), **meta))
    assert r.status_code == 403
    assert env.schedd.submitted == [] and env.keys.list("alice") == []


@pytest.mark.parametrize("dest,mode", [("iframe", "navigate"), ("frame", "navigate"), ("object", "no-cors"),
                                       ("image", "no-cors"), ("script", "no-cors"), ("empty", "cors")])
def test_cross_site_gets_are_refused_except_top_level_links(env, dest, mode):
    login(env.client)
    for site in ("cross-site", "same-site"):
        meta = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest, "Accept": "text/html"}
        r = env.client.get("/api/instances", headers=meta)
        assert r.status_code == 403 and "alice" not in r.data.decode()
    # Following a link from another site is fine (the browser sends no SameSite=Strict cookie with it).
    r = env.client.get("/api/instances", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                                  "Sec-Fetch-Dest": "document", "Accept": "text/html"})
    assert r.status_code == 200


def test_programs_work_unchanged(env):
    # curl -u / the PyPI deltacloud client: Basic, form body or query string, no Origin, no Sec-Fetch-*.
    assert env.client.post("/api/instances", data={"image_id": DEMO_ID}, headers=xml()).status_code == 201
    assert env.client.post("/api/instances?image_id=%s" % DEMO_ID, headers=jsonh()).status_code == 201
    assert env.client.post("/api/keys", data={"name": "k", "public_key": ED25519},
                           headers=jsonh()).status_code == 201
    assert env.client.delete("/api/keys/k", headers=jsonh()).status_code == 204


def test_basic_header_wins_over_the_session_cookie(env):
    login(env.client)  # as alice
    r = env.client.post("/api/instances", data={"image_id": DEMO_ID}, headers=jsonh("bob"))
    assert r.status_code == 201 and r.get_json()["instance"]["owner"] == "bob"


# -- logout and the end of sessions -------------------------------------------------------------------------------------
def _session_cookie(client):
    cookie = client.get_cookie(sessions_mod.SESSION_COOKIE)
    return cookie.value if cookie else None


def test_logout_ends_the_session(env):
    token = login(env.client)
    cookie = _session_cookie(env.client)
    assert env.client.post("/api/logout", headers=browser()).status_code == 403  # needs the token too
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 200
    r = env.client.post("/api/logout", data={"csrf_token": token}, headers=browser())
    assert r.status_code == 303 and r.headers["Location"] == "http://localhost/api/login"
    assert _session_cookie(env.client) is None
    # The old cookie is dead on the server side too.
    env.client.set_cookie(sessions_mod.SESSION_COOKIE, cookie)
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 401


def test_password_change_or_removal_ends_sessions(env):
    login(env.client)
    env.users.set_password("alice", "another-alice-password")
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 401
    login(env.client, "bob")
    env.users.remove("bob")
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 401


def test_idle_and_old_sessions_end(env):
    start = 1_000_000.0
    now = [start]
    env.app.extensions["condor_cloud"]["sessions"].clock = lambda: now[0]
    login(env.client)
    # An active session lives on (each request within SESSION_IDLE of the last) ...
    while now[0] + sessions_mod.SESSION_IDLE - 100 <= start + sessions_mod.SESSION_MAX:
        now[0] += sessions_mod.SESSION_IDLE - 100
        assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 200
    # ... but never beyond SESSION_MAX after the login.
    now[0] = start + sessions_mod.SESSION_MAX + 1
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 401
    # An idle one ends after SESSION_IDLE.
    login(env.client)
    now[0] += sessions_mod.SESSION_IDLE + 1
    assert env.client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 401


def test_sessions_are_shared_by_worker_processes(env, tmp_path):
    # gunicorn's workers each build nothing of their own: a login through one works through the other.
    other = create_app(settings=env.settings, users=env.users, keys=env.keys, jobs=env.jobs,
                       state=StateStore(str(tmp_path / "state")))
    login(env.client)
    client = other.test_client()
    client.set_cookie(sessions_mod.SESSION_COOKIE, _session_cookie(env.client))
    assert client.get("/api/keys", headers={"Accept": "application/json"}).status_code == 200


def test_a_blank_authorization_header_does_not_skip_the_token(env):
    login(env.client)
    for blank in ("", " "):
        r = _launch(env, None, **dict(browser(), Authorization=blank))
        assert r.status_code == 403
    assert env.schedd.submitted == []
