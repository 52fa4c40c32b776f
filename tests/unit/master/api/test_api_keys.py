"""SSH keys: per-user, validated, never private."""

import xml.etree.ElementTree as ET

import pytest

from condor_cloud.master.keys import fingerprint

from support import ED25519, jsonh, make_key, xml


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


def test_a_full_disk_is_507_and_leaves_nothing(env, mocker):
    import builtins
    import errno
    import os

    real_open = builtins.open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).startswith(str(env.settings.keys_dir)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    from support import ED25519, jsonh

    mocker.patch("builtins.open", side_effect=full)
    r = env.client.post("/api/keys", data={"name": "laptop", "public_key": ED25519}, headers=jsonh())
    mocker.stopall()
    assert r.status_code == 507 and "disk is full" in r.get_json()["message"]
    assert not [n for _, _, files in os.walk(env.settings.keys_dir) for n in files]


def test_a_key_created_without_a_public_key_returns_its_private_key_once(env):
    from support import jsonh, xml

    r = env.client.post("/api/keys", data={"name": "made"}, headers=jsonh())
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    body = r.get_json()["key"]
    assert body["pem_rsa_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert body["public_key"].startswith("ssh-rsa ")
    # the cloud keeps the public half only: later reads never show the private key
    again = env.client.get("/api/keys/made", headers=jsonh()).get_json()["key"]
    assert again["pem_rsa_key"] == again["public_key"] == body["public_key"]
    import os

    stored = "".join(open(os.path.join(d, f)).read() for d, _, fs in os.walk(env.settings.keys_dir) for f in fs)
    assert "PRIVATE" not in stored
    x = env.client.post("/api/keys", data={"name": "made2"}, headers=xml())
    assert x.status_code == 201 and b"BEGIN RSA PRIVATE KEY" in x.data
    assert env.client.post("/api/keys", data={"name": "made"}, headers=jsonh()).status_code == 400  # duplicate
