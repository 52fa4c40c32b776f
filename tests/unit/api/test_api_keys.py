"""SSH keys: per-user, validated, never private."""

import xml.etree.ElementTree as ET

import pytest

from condor_cloud.keys import fingerprint

from .conftest import ED25519, jsonh, make_key, xml


def test_create_list_show_delete(env):
    r = env.client.post("/api/keys", data={"name": "laptop", "public_key": ED25519}, headers=jsonh())
    assert r.status_code == 201
    key = r.get_json()["key"]
    assert r.headers["Location"] == key["href"] == "http://localhost/api/keys/laptop"
    assert key["fingerprint"] == fingerprint(ED25519) and key["fingerprint"].startswith("SHA256:")
    assert key["credential_type"] == "key" and key["public_key"] == ED25519
    assert [k["id"] for k in env.client.get("/api/keys", headers=jsonh()).get_json()["keys"]] == ["laptop"]
    root = ET.fromstring(env.client.get("/api/keys/laptop", headers=xml()).data)
    assert root.tag == "key" and root.get("type") == "key" and root.find("name").text == "laptop"
    assert root.find("pem").text == ED25519
    assert root.find("actions/link").attrib == {"href": "http://localhost/api/keys/laptop", "method": "delete",
                                                "rel": "destroy"}
    assert env.client.delete("/api/keys/laptop", headers=xml()).status_code == 204
    assert env.client.get("/api/keys/laptop", headers=xml()).status_code == 404
    assert env.client.delete("/api/keys/laptop", headers=xml()).status_code == 404


def test_keys_are_per_user(env):
    env.client.post("/api/keys", data={"name": "laptop", "public_key": ED25519}, headers=jsonh("alice"))
    assert env.client.get("/api/keys", headers=jsonh("bob")).get_json()["keys"] == []
    assert env.client.get("/api/keys/laptop", headers=jsonh("bob")).status_code == 404
    assert env.client.delete("/api/keys/laptop", headers=jsonh("bob")).status_code == 404
    # Bob may use the same name for his own key.
    r = env.client.post("/api/keys", data={"name": "laptop", "public_key": make_key("bob@pc", 7)}, headers=jsonh("bob"))
    assert r.status_code == 201


@pytest.mark.parametrize("data,fragment", [
    ({"public_key": ED25519}, "name is required"),
    ({"name": "k"}, "public_key is required"),
    ({"name": "../k", "public_key": ED25519}, "key name"),
    ({"name": "k", "public_key": "ssh-dss AAAA"}, "not supported"),
    ({"name": "k", "public_key": "ssh-ed25519 !!!!"}, "base64"),
    ({"name": "k", "public_key": ED25519 + "\nssh-ed25519 AAAA"}, "one line"),
    ({"name": "k", "public_key": make_key('x"$(Owner)')}, "comment"),
    ({"name": "k", "public_key": "ssh-rsa " + ED25519.split()[1]}, "does not match"),
])
def test_bad_keys_400(env, data, fragment):
    r = env.client.post("/api/keys", data=data, headers=jsonh())
    assert r.status_code == 400, r.data
    assert fragment in r.get_json()["message"]


def test_duplicate_key_400(env):
    env.client.post("/api/keys", data={"name": "k", "public_key": ED25519}, headers=jsonh())
    r = env.client.post("/api/keys", data={"name": "k", "public_key": make_key(seed=3)}, headers=jsonh())
    assert r.status_code == 400 and "exists" in r.get_json()["message"]
