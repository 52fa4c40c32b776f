"""The user file: salted scrypt hashes, atomic edits, no default user."""

import os
import stat

import pytest

from condor_cloud import users
from condor_cloud.errors import CloudError


def test_hash_is_salted_and_verifies():
    a = users.hash_password("correct horse", n=1024)
    b = users.hash_password("correct horse", n=1024)
    assert a != b and a.startswith("scrypt:1024:8:1:")
    assert users.verify_password("correct horse", a)
    assert not users.verify_password("correct horsE", a)


def test_default_cost_is_slow():
    assert users.SCRYPT_N >= 1 << 14


@pytest.mark.parametrize("stored", ["", "plain", "md5:x", "scrypt:1024:8:1:!!:!!", "scrypt:99999999:8:1:AA==:AA=="])
def test_bad_stored_forms_never_verify(stored):
    assert not users.verify_password("whatever-pass", stored)


def test_short_password_refused():
    with pytest.raises(CloudError):
        users.hash_password("short")


def test_add_authenticate_remove(tmp_path, monkeypatch):
    monkeypatch.setattr(users, "hash_password", _cheap)
    path = tmp_path / "etc" / "users"
    uf = users.UserFile(str(path), group=None)
    assert uf.load() == {}
    assert uf.authenticate("alice", "anything-at-all") is None  # no default user
    uf.add("alice", "alice-password")
    uf.add("root_", "admin-password", "admin")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    text = path.read_text()
    assert "alice-password" not in text and "alice:user:scrypt:" in text
    assert uf.authenticate("alice", "alice-password").role == "user"
    assert uf.authenticate("root_", "admin-password").is_admin
    assert uf.authenticate("alice", "wrong-password") is None
    assert uf.authenticate("nobody", "alice-password") is None
    with pytest.raises(CloudError, match="exists"):
        uf.add("alice", "another-password")
    uf.set_password("alice", "new-alice-password")
    assert uf.authenticate("alice", "alice-password") is None
    assert uf.authenticate("alice", "new-alice-password") is not None
    uf.remove("alice")
    assert uf.authenticate("alice", "new-alice-password") is None
    with pytest.raises(CloudError):
        uf.remove("alice")
    assert not [p for p in os.listdir(path.parent) if ".tmp" in p]


def _cheap(pw):
    import hashlib
    import secrets

    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pw.encode(), salt=salt, n=1024, r=8, p=1, dklen=32)
    import base64

    if len(pw) < users.MIN_PASSWORD:
        raise CloudError("short")
    return "scrypt:1024:8:1:%s:%s" % (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


@pytest.mark.parametrize("name", ["", "Alice", "a:b", "../x", "a b", "a" * 33, "-x", "1abc"])
def test_bad_names(tmp_path, name):
    with pytest.raises(CloudError):
        users.UserFile(str(tmp_path / "users"), group=None).add(name, "long-enough-pw")


def test_success_is_cached_until_file_changes(tmp_path, mocker):
    path = tmp_path / "users"
    path.write_text("alice:user:%s\n" % _cheap("alice-password"))
    uf = users.UserFile(str(path), group=None)
    spy = mocker.spy(users, "verify_password")
    assert uf.authenticate("alice", "alice-password")
    assert uf.authenticate("alice", "alice-password")
    assert spy.call_count == 1
    path.write_text("alice:admin:%s\n" % _cheap("other-password"))
    assert uf.authenticate("alice", "alice-password") is None


def test_malformed_file_is_an_error(tmp_path):
    path = tmp_path / "users"
    path.write_text("garbage line\n")
    with pytest.raises(CloudError, match="line 1"):
        users.UserFile(str(path), group=None).load()
