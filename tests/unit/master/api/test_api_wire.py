"""The Deltacloud wire format: negotiation, headers, auth, the fixed collections and error bodies."""

import hashlib
import json
import xml.etree.ElementTree as ET

import pytest

from condor_cloud.master.api.negotiation import NotAcceptable, choose_format

from support import DEMO_ID, auth, jsonh, xml


@pytest.mark.parametrize("fmt,accept,expected", [
    (None, None, "xml"),
    (None, "", "xml"),
    (None, "application/xml", "xml"),
    (None, "text/xml", "xml"),
    (None, "application/json", "json"),
    (None, "text/html", "html"),
    (None, "*/*", "html"),
    (None, "*/*; q=0.5, application/xml", "xml"),
    (None, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"),
    (None, "application/json;q=0.9, application/xml;q=0.8", "json"),
    ("json", "application/xml", "json"),
    ("HTML", None, "html"),
])
def test_choose_format(fmt, accept, expected):
    assert choose_format(fmt, accept) == expected


@pytest.mark.parametrize("fmt,accept", [(None, "image/png"), (None, "application/xml;q=0"), ("yaml", None)])
def test_choose_format_not_acceptable(fmt, accept):
    with pytest.raises(NotAcceptable):
        choose_format(fmt, accept)


def test_api_root_xml_headers(env):
    r = env.client.get("/api")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/xml"
    assert r.headers["Server"] == "Apache-Deltacloud/1.1.3"
    assert r.headers["X-Deltacloud-Driver"] == "condor"
    assert r.headers["Cache-Control"] == "max-age=0, private, must-revalidate"
    assert r.headers["ETag"] == hashlib.md5(r.data).hexdigest()
    root = ET.fromstring(r.data)
    assert root.tag == "api" and root.get("driver") == "condor" and root.get("version") == "1.1.3"
    links = {link.get("rel"): link for link in root.findall("link")}
    assert set(links) >= {"hardware_profiles", "images", "instances", "realms", "instance_states", "keys", "drivers"}
    assert links["instances"].get("href") == "http://localhost/api/instances"
    features = {f.get("name"): f for f in links["instances"].findall("feature")}
    assert features["user_data"].find("param").get("name") == "user_data"
    assert features["authentication_key"].find("param").get("name") == "keyname"
    assert b"'http://localhost/api/images'" in r.data  # single-quoted attributes


def test_api_root_uses_host_header(env):
    r = env.client.get("/api", headers={"Host": "cloud.example.org:3002"})
    assert b"http://cloud.example.org:3002/api/images" in r.data


def test_api_root_missing_host_is_400(env):
    r = env.client.get("/api", environ_overrides={"HTTP_HOST": ""})
    assert r.status_code == 400
    assert ET.fromstring(r.data).tag == "error"


def test_api_root_json(env):
    r = env.client.get("/api", headers={"Accept": "application/json"})
    assert r.headers["Content-Type"] == "application/json"
    doc = r.get_json()["api"]
    assert doc["driver"] == "condor" and doc["version"] == "1.1.3" and doc["provider"] == "default"
    links = {link["rel"]: link for link in doc["links"]}
    assert links["instances"]["features"] == [
        [{"name": "user_data", "rel": "create", "params": ["user_data:string:optional"], "constraints": {}}],
        [{"name": "authentication_key", "rel": "create", "params": ["keyname:string:optional"], "constraints": {}}]]


def test_old_client_accept_gets_xml(env):
    r = env.client.get("/api", headers={"Accept": "*/*; q=0.5, application/xml"})
    assert r.headers["Content-Type"] == "application/xml"


def test_406(env):
    r = env.client.get("/api", headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert ET.fromstring(r.data).find("code").text == "406"


def test_force_auth(env):
    assert env.client.get("/api?force_auth=1").status_code == 401
    assert env.client.get("/api?force_auth=1", headers=auth("alice", "wrong-password")).status_code == 401
    assert env.client.get("/api?force_auth=1", headers=auth("alice")).status_code == 200


@pytest.mark.parametrize("path", ["/api/realms", "/api/hardware_profiles", "/api/images", "/api/instances",
                                  "/api/keys", "/api/realms/default"])
def test_auth_required(env, path):
    r = env.client.get(path)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Condor Cloud"'
    err = ET.fromstring(r.data)
    assert err.get("status") == "401" and err.find("code").text == "401"
    # Wrong credentials: 401 as well (upstream gave 500).
    assert env.client.get(path, headers=auth("alice", "not-the-password")).status_code == 401
    assert env.client.get(path, headers=auth("mallory", "whatever-pass")).status_code == 401


@pytest.mark.parametrize("path", ["/api", "/api/drivers", "/api/instance_states", "/api/drivers/condor"])
def test_no_auth_needed(env, path):
    assert env.client.get(path).status_code == 200


def test_error_body_xml(env):
    r = env.client.get("/api/realms/foo", headers=xml())
    assert r.status_code == 404
    assert r.data.startswith(b"<?xml version='1.0' encoding='utf-8' ?>")
    err = ET.fromstring(r.data)
    assert err.get("status") == "404" and err.get("url") == "/api/realms/foo"
    backend = err.find("backend")
    assert backend.get("driver") == "condor" and backend.get("provider") == "default"
    assert err.find("code").text == "404"
    assert b"<message><![CDATA[" in r.data
    assert "ETag" not in r.headers


def test_error_body_json(env):
    r = env.client.get("/api/realms/foo", headers=jsonh())
    assert r.status_code == 404
    body = r.get_json()
    assert body["code"] == 404 and "foo" in body["message"] and body["error"] == "Not Found"


def test_cdata_is_not_broken_by_user_input(env):
    r = env.client.get("/api/realms/a]]>b", headers=xml())
    assert r.status_code == 404
    ET.fromstring(r.data)  # still well-formed


def test_unknown_route_is_404_with_body(env):
    r = env.client.get("/api/nonsense", headers=xml())
    assert r.status_code == 404 and ET.fromstring(r.data).tag == "error"


def test_drivers(env):
    root = ET.fromstring(env.client.get("/api/drivers").data)
    driver = root.find("driver")
    assert driver.get("id") == "condor" and driver.find("name").text == "Condor"
    assert env.client.get("/api/drivers?format=json").get_json() == {"condor": {"name": "Condor"}}
    assert env.client.get("/api/drivers/condor?format=json").get_json() == {"driver": {"id": "condor",
                                                                                     "name": "Condor"}}
    assert env.client.get("/api/drivers/ec2").status_code == 404


def test_realms(env):
    root = ET.fromstring(env.client.get("/api/realms", headers=xml()).data)
    realm = root.find("realm")
    assert realm.get("id") == "default" and realm.find("name").text == "Default Condor Realm"
    assert realm.find("state").text == "AVAILABLE" and realm.find("limit") is None
    doc = env.client.get("/api/realms", headers=jsonh()).get_json()
    assert doc["realms"][0]["id"] == "default"
    assert env.client.get("/api/realms/default", headers=jsonh()).get_json()["realm"]["name"] == \
        "Default Condor Realm"


def test_instance_states(env):
    root = ET.fromstring(env.client.get("/api/instance_states").data)
    states = {s.get("name"): s for s in root.findall("state")}
    assert states["start"].find("transition").attrib == {"auto": "true", "to": "pending"}
    assert {"to": "finish", "action": "destroy"} in [t.attrib for t in states["pending"].findall("transition")]
    doc = env.client.get("/api/instance_states?format=json").get_json()
    assert isinstance(doc, list) and doc[0] == {"name": "start", "transitions": [{"to": "pending", "auto": "true"}]}


def test_hardware_profiles(env):
    root = ET.fromstring(env.client.get("/api/hardware_profiles", headers=xml()).data)
    profiles = {p.get("id"): p for p in root.findall("hardware_profile")}
    assert list(profiles) == ["small", "medium", "large"]
    props = {p.get("name"): p.attrib for p in profiles["small"].findall("property")}
    assert props["memory"] == {"kind": "fixed", "name": "memory", "unit": "MB", "value": "512"}
    assert props["cpu"]["value"] == "1" and props["architecture"]["value"] == "x86_64"
    assert {p.get("name"): p.get("value") for p in profiles["large"].findall("property")}["memory"] == "2048"
    doc = env.client.get("/api/hardware_profiles/medium", headers=jsonh()).get_json()["hardware_profile"]
    assert doc["properties"] == {"architecture": "x86_64", "memory": "1024", "cpu": "2"}
    assert doc["href"] == "http://localhost/api/hardware_profiles/medium"
    assert env.client.get("/api/hardware_profiles/huge", headers=xml()).status_code == 404
    filtered = env.client.get("/api/hardware_profiles?id=large", headers=jsonh()).get_json()
    assert [p["id"] for p in filtered["hardware_profiles"]] == ["large"]
    assert env.client.get("/api/hardware_profiles?architecture=i386", headers=jsonh()).get_json() == \
        {"hardware_profiles": []}


def test_images(env):
    r = env.client.get("/api/images", headers=xml())
    root = ET.fromstring(r.data)
    imgs = {i.find("name").text: i for i in root.findall("image")}
    assert set(imgs) == {"demo.qcow2", "other.img"}
    demo = imgs["demo.qcow2"]
    assert demo.get("id") == DEMO_ID == hashlib.sha1(b"demo-qcow2").hexdigest()
    assert demo.find("state").text == "AVAILABLE" and demo.find("architecture").text == "x86_64"
    assert demo.find("root_type").text == "transient"
    assert [h.get("id") for h in demo.find("hardware_profiles")] == ["small", "medium", "large"]
    create = demo.find("actions/link")
    assert create.attrib == {"href": "http://localhost/api/instances;image_id=" + DEMO_ID, "method": "post",
                             "rel": "create_instance"}
    doc = env.client.get("/api/images/" + DEMO_ID, headers=jsonh()).get_json()["image"]
    assert set(doc) == {"id", "href", "name", "description", "owner", "architecture", "state", "root_type",
                        "creation_time", "hardware_profiles"}
    assert doc["hardware_profiles"][0] == {"id": "small", "href": "http://localhost/api/hardware_profiles/small",
                                           "rel": "hardware_profile"}
    assert env.client.get("/api/images/" + "0" * 40, headers=xml()).status_code == 404
    assert len(env.client.get("/api/images?id=" + DEMO_ID, headers=jsonh()).get_json()["images"]) == 1


def test_image_checksum_and_size_shown(env):
    (env.store / "demo.qcow2.sha256").write_text("a" * 64 + "  demo.qcow2\n")
    doc = env.client.get("/api/images/" + DEMO_ID, headers=jsonh()).get_json()["image"]
    assert "sha256 " + "a" * 64 in doc["description"] and "1.0 KiB" in doc["description"]


def test_json_index_shapes_for_the_pypi_client(env):
    # The PyPI 'deltacloud' client reads doc['api']['links'], doc['images'], doc['instances'], doc['keys'].
    assert isinstance(env.client.get("/api/images", headers=jsonh()).get_json()["images"], list)
    assert env.client.get("/api/instances", headers=jsonh()).get_json() == {"instances": []}
    assert env.client.get("/api/keys", headers=jsonh()).get_json() == {"keys": []}


def test_body_limit_413(env):
    r = env.client.post("/api/keys", data={"name": "k", "public_key": "x" * (2 << 20)}, headers=xml())
    assert r.status_code == 413
    assert ET.fromstring(r.data).find("code").text == "413"


def test_cross_site_post_refused(env):
    r = env.client.post("/api/keys", data={"name": "k", "public_key": "x"},
                        headers=dict(xml(), Origin="http://evil.example.com"))
    assert r.status_code == 403
    r = env.client.post("/api/keys", data={"name": "k", "public_key": "x"},
                        headers=dict(xml(), **{"Sec-Fetch-Site": "cross-site"}))
    assert r.status_code == 403


def test_unexpected_exception_is_logged_500(env, mocker, caplog):
    mocker.patch("condor_cloud.master.api.views.store_images", side_effect=RuntimeError("boom"))
    r = env.client.get("/api/images", headers=jsonh())
    assert r.status_code == 500
    assert json.loads(r.data)["code"] == 500
    assert "boom" in caplog.text
