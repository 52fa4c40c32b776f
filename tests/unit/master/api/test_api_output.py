"""Every output format stays valid whatever a job ad holds: control characters, lone surrogates, "]]>", quotes and
markup in CloudName, HoldReason, Owner, Cmd, the disk's image name, ... (issue 11, item 2)."""

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from xml.dom import minidom

import pytest

from condor_cloud.master.api import sanitize

from support import html, jsonh, xml

# Everything XML cannot carry or a template could be fooled by (NUL ends a C string in classad2: keep it last).
HOSTILE = "a\x01b\x08\x0b\x0c\x1b[31m\x7f\x85\ufffe\uffff\"'<script>alert(1)</script>&amp;]]><![CDATA[x\x00"
SURROGATES = "s\udc80\ud800t"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _hostile_jobs(env):
    import classad2

    # An instance alice launched through the API (its Cloud* attributes count), held, with hostile values...
    env.schedd.jobs.append(classad2.ClassAd({
        "ClusterId": 7, "ProcId": 0, "JobUniverse": 13, "JobStatus": 5, "Owner": "condor-cloud-api",
        "CloudOwner": "alice", "CloudName": HOSTILE, "CloudProfile": HOSTILE, "CloudKeyName": HOSTILE,
        "GlobalJobId": "master.example.org#7.0#1700000000", "Cmd": HOSTILE, "HoldReason": HOSTILE,
        "VMPARAM_vm_Disk": HOSTILE + ":vda:w", "ChirpCloudAddresses": HOSTILE}))
    # ... and a by-hand job of another account with a hostile Owner (only admins see it).
    env.schedd.jobs.append(classad2.ClassAd({
        "ClusterId": 8, "ProcId": 0, "JobUniverse": 13, "JobStatus": 5, "Owner": HOSTILE[:-1],
        "GlobalJobId": "master.example.org#8.0#1700000000", "Cmd": HOSTILE, "HoldReason": HOSTILE}))


def _with_surrogates(env, mocker):
    """Lone surrogates cannot pass through classad2; put them into what the schedd side returns instead."""
    real_list, real_get = env.jobs.list, env.jobs.get

    def spoil(info):
        return dataclasses.replace(info, name=SURROGATES + info.name, hold_reason=SURROGATES, owner=info.owner,
                                   keyname=SURROGATES, profile=SURROGATES)

    mocker.patch.object(env.jobs, "list", side_effect=lambda *a, **k: [spoil(i) for i in real_list(*a, **k)])
    mocker.patch.object(env.jobs, "get", side_effect=lambda *a, **k: spoil(real_get(*a, **k)))


def _paths(env, user):
    ids = [i["id"] for i in env.client.get("/api/instances", headers=jsonh(user)).get_json()["instances"]]
    assert ids, "the hostile jobs must be visible to %s" % user
    return ["/api/instances"] + ["/api/instances/" + i for i in ids]


def _check_xml(data):
    text = data.decode("utf-8")  # valid UTF-8 (no lone surrogate made it through)
    assert not _XML_INVALID.search(text)
    root = ET.fromstring(data)
    minidom.parseString(data)  # a second, independent parse
    return root


@pytest.mark.parametrize("user", ["alice", "root_"])
@pytest.mark.parametrize("surrogates", [False, True])
def test_every_format_stays_valid(env, mocker, user, surrogates):
    _hostile_jobs(env)
    if surrogates:
        _with_surrogates(env, mocker)
    for path in _paths(env, user):
        r = env.client.get(path, headers=xml(user))
        assert r.status_code == 200, (path, r.data)
        root = _check_xml(r.data)
        for inst in ([root] if root.tag == "instance" else root.findall("instance")):
            name = inst.find("name").text
            assert "<script>alert(1)</script>" in name and "]]>" in name and "\ufffd" in name

        r = env.client.get(path, headers=jsonh(user))
        assert r.status_code == 200
        text = r.data.decode("utf-8")
        doc = json.loads(text)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # no lone surrogate, even escaped
        assert "\\ud8" not in text.lower() and "\\udc" not in text.lower()
        assert "\\u0001" not in text and "<script>alert(1)</script>" in text

        r = env.client.get(path, headers=html(user))
        assert r.status_code == 200
        page = r.data.decode("utf-8")
        assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<![CDATA[" not in page and '"\'<' not in page
        assert not _XML_INVALID.search(page) and "\x1b" not in page


def test_hold_reason_and_owner_are_escaped_in_html(env):
    _hostile_jobs(env)
    page = env.client.get("/api/instances", headers=html("root_")).data.decode()
    assert page.count("&lt;script&gt;") >= 3  # name, held reason, owner of the by-hand job
    assert "&#34;&#39;&lt;" in page or "&#34;&#39;&lt;" in page.replace("&quot;", "&#34;")


def test_error_bodies_stay_valid(env):
    # The request path is echoed in the error body (the url attribute and the message).
    r = env.client.get("/api/realms/a%01%0Bb]]>%22%27<x>", headers=xml())
    assert r.status_code == 404
    err = _check_xml(r.data)
    assert err.get("url").startswith("/api/realms/a")
    r = env.client.get("/api/realms/a%01b", headers=jsonh())
    json.loads(r.data.decode("utf-8"))


def test_keys_pem_cdata_cannot_be_broken(env, mocker):
    key = SimpleNamespace(owner="alice", name="k", public_key="ssh-ed25519 AAAA x]]><y>\x01\ud800",
                          fingerprint="SHA256:x")
    mocker.patch.object(env.keys, "get", return_value=key)
    r = env.client.get("/api/keys/k", headers=xml())
    assert r.status_code == 200
    assert _check_xml(r.data).find("pem").text == "ssh-ed25519 AAAA x]]><y>\ufffd\ufffd"


@pytest.mark.parametrize("text,expected", [
    ("plain", "plain"),
    ("tab\tnewline\nreturn\r", "tab\tnewline\nreturn\r"),
    ("\x00\x1f\x7f\x9f", "\ufffd" * 4),
    ("\ud800\udfff\ufffe\uffff", "\ufffd" * 4),
    ("é€😀 ]]> <&>'\"", "é€😀 ]]> <&>'\""),
])
def test_clean_text(text, expected):
    assert sanitize.clean_text(text) == expected
