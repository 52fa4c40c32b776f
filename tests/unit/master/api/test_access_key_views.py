"""The browser page and JSON/XML resource /api/access_keys (condor_cloud/master/api/access_key_views.py): own
keys only, the secret shown once, CSRF."""

import pytest

from condor_cloud.master.access_keys import AccessKeyStore

from support import browser, jsonh, login, make_api_env


# -- the browser page (the Deltacloud API's app) -----------------------------------------------------------------
@pytest.fixture
def web(tmp_path, mocker, monkeypatch):
    e = make_api_env(tmp_path, mocker, monkeypatch)
    e.access = AccessKeyStore(str(tmp_path / "ec2" / "access-keys"))
    e.app.extensions["condor_cloud"]["access_keys"] = e.access
    return e


def test_page_create_shows_the_secret_once_and_lists_only_own_keys(web):
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
    login(web.client)
    r = web.client.post("/api/access_keys", data={}, headers=browser())
    assert r.status_code == 403 and web.access.list("alice") == []


def test_programs_use_it_with_basic_auth(web):
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
