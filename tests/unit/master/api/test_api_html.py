"""Browser pages at the same URLs: forms that work without JavaScript."""

import re

from support import DEMO_ID, ED25519, html


def test_api_page_without_login(env):
    r = env.client.get("/api", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"Log in" in r.data


def test_images_page_has_launch_form(env):
    env.keys.add("alice", "laptop", ED25519)
    r = env.client.get("/api/images", headers=html())
    page = r.data.decode()
    assert "Logged in as" in page and "demo.qcow2" in page
    assert 'action="http://localhost/api/instances"' in page
    assert 'name="image_id" value="%s"' % DEMO_ID in page
    for field in ('name="hwp_id"', 'name="name"', 'name="keyname"', 'name="user_data_text"'):
        assert field in page
    assert '<option value="laptop">' in page
    assert "<script" not in page


def test_launch_from_form_and_destroy_button(env):
    r = env.client.post("/api/instances", data={"image_id": DEMO_ID, "hwp_id": "small", "name": "web",
                                                "keyname": "", "user_data_text": "#cloud-config\r\n"},
                        headers=html())
    assert r.status_code == 303
    location = r.headers["Location"]
    assert re.search(r"/api/instances/master\.example\.org_42\.0_1700000000$", location)
    assert env.schedd.spooled[0]["files"] == {"user-data": b"#cloud-config\n"}
    page = env.client.get(location, headers=html()).data.decode()
    assert 'id="state">PENDING' in page and 'http-equiv="refresh"' in page
    assert 'action="%s/destroy"' % location in page
    env.schedd.set_status(42, 2)
    listing = env.client.get("/api/instances", headers=html()).data.decode()
    assert "state-RUNNING" in listing and "not known yet" in listing
    r = env.client.post(location + "/destroy", headers=html())
    assert r.status_code == 303


def test_html_user_data_too_large(env):
    r = env.client.post("/api/instances", data={"image_id": DEMO_ID, "user_data_text": "x" * 2000}, headers=html())
    assert r.status_code == 400 and b"larger than" in r.data


def test_keys_page_add_and_delete(env):
    r = env.client.post("/api/keys", data={"name": "laptop", "public_key": ED25519}, headers=html())
    assert r.status_code == 303
    page = env.client.get("/api/keys", headers=html()).data.decode()
    assert "laptop" in page and "SHA256:" in page and 'action="http://localhost/api/keys/laptop/destroy"' in page
    assert env.client.post("/api/keys/laptop/destroy", headers=html()).status_code == 303
    assert env.keys.list("alice") == []


def test_html_escapes_values(env):
    import classad2

    env.schedd.jobs.append(classad2.ClassAd({
        "ClusterId": 7, "ProcId": 0, "JobUniverse": 13, "JobStatus": 5, "Owner": "carol",
        "GlobalJobId": "m#7.0#1", "Cmd": "<script>alert(1)</script>", "HoldReason": "<b>bad</b>"}))
    page = env.client.get("/api/instances", headers=html("root_")).data.decode()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;bad" in page


def test_error_page_html(env):
    r = env.client.get("/api/images/nothing", headers=html())
    assert r.status_code == 404 and b"no image" in r.data and b"<!DOCTYPE html>" in r.data


def test_root_redirects_to_api(env):
    r = env.client.get("/", headers=html())
    assert r.status_code == 303 and r.headers["Location"].endswith("/api")
