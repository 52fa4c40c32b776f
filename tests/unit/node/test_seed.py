"""NoCloud seeds: goldens read back with pycdlib, validation of everything a user controls, hostile input."""

import base64
import os
import stat
import sys

import pytest

from condor_cloud.core import errors, sshkeys, userdata
from condor_cloud.core.errors import CloudError
from condor_cloud.node import seed

from support import b64, ECDSA, ED25519, REPO, RSA, SCRIPT


try:
    import pycdlib
except ImportError:        # the validation tests still run; tests/requirements.txt installs it for `make check`
    pycdlib = None


needs_pycdlib = pytest.mark.skipif(pycdlib is None, reason="pycdlib is not installed (pip install pycdlib)")


GOLDEN = os.path.join(REPO, "tests", "data", "seed")


REGENERATE = os.environ.get("CLOUD_REGENERATE_GOLDENS") == "1"


ID = "12.0-0a1b2c3d"


MAC = "52:54:00:3e:8b:1c"


# gzip of b"#cloud-config\nruncmd: [true]\n", as bytes: zlib builds (zlib-ng on Fedora) compress differently.
GZIPPED = base64.b64decode("H4sIAAAAAAACA1NOzskvTdFNzs9Ly0znKirNS85NsVKILikqTY3lAgDQ7QL2HQAAAA==")


CASES = {
    "keys-default-user-data": dict(hostname="web1", ssh_keys=[ED25519, RSA]),
    "user-data-and-key": dict(hostname="web1", user_data=SCRIPT, ssh_keys=[ED25519]),
    "nothing-given": dict(hostname="instance-12-0-0a1b2c3d"),
    "gzip-and-network-config": dict(hostname="db-2", user_data=GZIPPED,
                                    ssh_keys=[ECDSA], network_config=seed.dhcp_network_config(MAC)),
}


def tree(path):
    """Every file and directory on the volume, in each of its three namespaces."""
    iso = pycdlib.PyCdlib()
    with open(path, "rb") as f:
        iso.open_fp(f)
        try:
            names = {}
            for space in ("iso_path", "joliet_path", "rr_path"):
                entries = []
                for dirpath, dirs, files in iso.walk(**{space: "/"}):
                    entries.extend(os.path.join(dirpath, d) + "/" for d in dirs)
                    entries.extend(os.path.join(dirpath, f) for f in files)
                names[space] = sorted(entries)
            names["joliet_label"] = iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip()
        finally:
            iso.close()
    return names


def compare_golden(name, files):
    directory = os.path.join(GOLDEN, name)
    if REGENERATE:
        os.makedirs(directory, exist_ok=True)
        for old in os.listdir(directory):
            os.unlink(os.path.join(directory, old))
        for fname, data in files.items():
            with open(os.path.join(directory, fname), "wb") as f:
                f.write(data)
    expected = {}
    for fname in sorted(os.listdir(directory)):
        with open(os.path.join(directory, fname), "rb") as f:
            expected[fname] = f.read()
    assert files == expected, "seed differs from %s (CLOUD_REGENERATE_GOLDENS=1 rewrites it)" % directory


@needs_pycdlib
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_seeds(case, tmp_path):
    path = str(tmp_path / "seed.iso")
    assert seed.build_seed(path, ID, **CASES[case]) == path
    label, files = seed.read_seed(path)
    assert label == "cidata"
    compare_golden(case, files)
    names = tree(path)
    wanted = sorted(files)
    assert names["rr_path"] == ["/" + n for n in wanted]
    assert names["joliet_path"] == ["/" + n for n in wanted]
    assert names["iso_path"] == sorted(seed._FILES[n] for n in wanted)
    assert names["joliet_label"] == "cidata"


@needs_pycdlib
def test_seed_file_mode_and_atomic_replace(tmp_path):
    path = tmp_path / "seed.iso"
    path.write_bytes(b"old")
    old_umask = os.umask(0o077)
    try:
        seed.build_seed(str(path), ID, "web1", ssh_keys=[ED25519])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == ["seed.iso"]
    assert seed.read_seed(str(path))[1]["meta-data"].startswith(b'instance-id: "12.0-0a1b2c3d"\n')


@needs_pycdlib
def test_seed_write_failure_is_a_clear_error(tmp_path):
    with pytest.raises(CloudError, match="cannot write the cloud-init seed") as info:
        seed.build_seed(str(tmp_path / "missing" / "seed.iso"), ID, "web1")
    assert info.value.code == errors.INTERNAL


@needs_pycdlib
def test_seed_does_not_follow_a_planted_temporary_symlink(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    os.symlink(str(target), str(tmp_path / ".seed.iso.tmp"))
    with pytest.raises(CloudError):
        seed.build_seed(str(tmp_path / "seed.iso"), ID, "web1")
    assert target.read_bytes() == b"keep"


def test_missing_pycdlib_is_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycdlib", None)
    with pytest.raises(CloudError, match="python3-pycdlib is not installed"):
        seed.build_seed(str(tmp_path / "seed.iso"), ID, "web1")


# ------------------------------------------------------------------------------------------------- meta-data


def test_keys_reach_meta_data_even_with_user_data(tmp_path):
    files = seed.seed_files(ID, "web1", user_data=SCRIPT, ssh_keys=[ED25519])
    assert files["user-data"] == SCRIPT
    assert files["meta-data"].decode().splitlines()[2:] == ["public-keys:", '  - "%s"' % ED25519]


def test_meta_data_quotes_values_as_json_strings():
    comment = 'alice": {x: 1} #&*! \u00e9\u2028'
    key = ED25519.rsplit(" ", 1)[0] + " " + comment.replace("\u2028", "")
    text = seed.meta_data(ID, "WEB1", [key]).decode("ascii")
    import json

    lines = text.splitlines()
    assert lines[0] == 'instance-id: "12.0-0a1b2c3d"'
    assert lines[1] == 'local-hostname: "web1"'
    assert json.loads(lines[3][len("  - "):]) == key


@pytest.mark.parametrize("hostname", ["", "-web", "web-", "web_1", "web.example.org", "a" * 64, "web1\nfoo: bar",
                                      'web1"', "web 1", "w\u00e9b", None, 5])
def test_bad_hostnames(hostname):
    with pytest.raises(CloudError, match="host name") as info:
        seed.meta_data(ID, hostname)
    assert info.value.code == errors.BAD_REQUEST


@pytest.mark.parametrize("name,expected", [
    ("web1", "web1"), ("Web Server #1", "web-server-1"), ("db_2.prod", "db-2-prod"), ("web1\ninstance-id: x",
                                                                                     "web1-instance-id-x"),
    ("", "instance-12-0-0a1b2c3d"), (None, "instance-12-0-0a1b2c3d"), ("---", "instance-12-0-0a1b2c3d"),
    ("x" * 70, "x" * 63), ("a" * 62 + "-b", "a" * 62),
])
def test_hostname_for(name, expected):
    assert seed.hostname_for(name, ID) == expected


@pytest.mark.parametrize("instance_id", ["", "../x", "12.0\ninstance-id: evil", "a b", "x" * 129, None])
def test_bad_instance_ids(instance_id):
    with pytest.raises(CloudError, match="instance id"):
        seed.meta_data(instance_id, "web1")


def test_user_data_size_limit():
    limit = userdata.MAX_USER_DATA
    assert len(userdata.decode_user_data(b64(b"#" * limit))) == limit
    with pytest.raises(CloudError, match="larger than 65536 bytes"):
        userdata.decode_user_data(b64(b"#" * (limit + 1)))
    with pytest.raises(CloudError, match="larger than 65536 bytes"):
        userdata.decode_user_data("A" * (50 * 1024 * 1024))     # refused before decoding
    with pytest.raises(CloudError, match="larger than 65536 bytes"):
        seed.build_seed("/nonexistent/seed.iso", ID, "web1", user_data=b"#" * (limit + 1))


@needs_pycdlib
def test_hostile_user_data_stays_inside_user_data(tmp_path):
    hostile = (b"#cloud-config\n" + b"../../../etc/passwd\n" + b"meta-data: evil\n/user-data\n" +
               "\u202e/\\..\\..\\".encode("utf-8") + b"\n" * 1000)
    path = str(tmp_path / "seed.iso")
    seed.build_seed(path, ID, "web1", user_data=hostile, ssh_keys=[ED25519])
    label, files = seed.read_seed(path)
    assert files["user-data"] == hostile
    assert sorted(files) == ["meta-data", "user-data"]
    names = tree(path)
    assert names["rr_path"] == ["/meta-data", "/user-data"]
    assert names["joliet_path"] == ["/meta-data", "/user-data"]
    assert names["iso_path"] == ["/METADATA.;1", "/USERDATA.;1"]


# ------------------------------------------------------------------------------------------------- SSH keys


def test_ssh_keys_use_the_shared_validator():
    # check_ssh_key is tested in tests/unit/core/test_sshkeys.py; unlike the key store, CloudSSHKey may carry any printable comment.
    assert seed.check_ssh_key is sshkeys.check_ssh_key
    key = ED25519.rsplit(" ", 1)[0] + ' my "old" laptop'
    assert seed.parse_ssh_keys(key) == [key]


def test_parse_ssh_keys_one_per_line():
    assert seed.parse_ssh_keys("%s\r\n\n  \n%s\n%s\n" % (ED25519, RSA, ED25519)) == [ED25519, RSA]
    assert seed.parse_ssh_keys(None) == [] and seed.parse_ssh_keys("") == []


def test_too_many_keys():
    with pytest.raises(CloudError, match="too many SSH keys"):
        seed.check_ssh_keys([ED25519] * (seed.MAX_KEYS + 1))


def test_network_config_forms():
    assert seed.check_network_config(None) is None
    assert seed.check_network_config("version: 2\n") == b"version: 2\n"
    assert b'"macaddress": "52:54:00:3e:8b:1c"' in seed.check_network_config(seed.dhcp_network_config(MAC.upper()))
    for bad in (b"\xff\xfe", "a\x00b", 5, "x" * (seed.MAX_NETWORK_CONFIG + 1)):
        with pytest.raises(CloudError, match="network-config"):
            seed.check_network_config(bad)


# ------------------------------------------------------------------------------------------------- job ads


def ad(text):
    import classad2

    return classad2.parseOne(text)


def test_inputs_from_job_read_the_sandbox_files(tmp_path):
    (tmp_path / "user-data").write_bytes(SCRIPT)
    (tmp_path / "ssh-authorized-keys").write_text(ED25519 + "\n\n")
    inputs = seed.inputs_from_job(ad('CloudName = "Web_1"\nCloudUserData = "%s"\n' % b64(b"ignored")), str(tmp_path))
    assert inputs.user_data == SCRIPT and inputs.ssh_keys == [ED25519] and inputs.name == "Web_1"
    assert seed.hostname_for(inputs.name, ID) == "web-1"
    empty = seed.inputs_from_job(ad('ClusterId = 12\nCmd = "/home/alice/db_2.prod"\n'), str(tmp_path / "none"))
    assert empty.user_data is None and empty.ssh_keys == [] and empty.name == "db_2.prod"


@pytest.mark.parametrize("name, content, message", [
    ("ssh-authorized-keys", b"ssh-dss AAAA\n", "not supported"),
    ("ssh-authorized-keys", b"\xff\xfe", "not UTF-8"),
    ("user-data", b"#!/bin/sh\n\x00", "NUL byte"),
    ("user-data", b"\xff" * 10, "neither UTF-8"),
    ("user-data", b"x" * (userdata.MAX_USER_DATA + 1), "too large"),
])
def test_bad_sandbox_files_are_bad_requests(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CloudError, match=message) as info:
        seed.inputs_from_job(ad("ClusterId = 1\n"), str(tmp_path))
    assert info.value.code == errors.BAD_REQUEST


def test_a_sandbox_file_that_is_a_link_or_not_a_file_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root's secret")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    os.symlink(str(secret), str(sandbox / "user-data"))
    with pytest.raises(CloudError, match="regular file"):
        seed.inputs_from_job(ad("ClusterId = 1\n"), str(sandbox))
    os.unlink(str(sandbox / "user-data"))
    os.mkfifo(str(sandbox / "user-data"))
    with pytest.raises(CloudError, match="regular file"):
        seed.inputs_from_job(ad("ClusterId = 1\n"), str(sandbox))
