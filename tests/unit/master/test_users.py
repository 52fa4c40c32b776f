"""The user file: salted scrypt hashes, atomic edits, no default user."""

import os
import stat

import pytest

from condor_cloud.master import users
from condor_cloud.core.errors import CloudError


def test_hash_is_salted_and_verifies():
    a = users.hash_password("correct horse", n=1024)
    b = users.hash_password("correct horse", n=1024)
    assert a != b and a.startswith("scrypt:1024:8:1:")
    assert users.verify_password("correct horse", a)
    assert not users.verify_password("correct horsE", a)


def test_default_cost_follows_current_guidance():
    assert (users.SCRYPT_N, users.SCRYPT_R, users.SCRYPT_P) == (1 << 17, 8, 1)
    assert users.is_weaker("scrypt:32768:8:1:AA==:AA==") and not users.is_weaker("scrypt:131072:8:1:AA==:AA==")


@pytest.mark.parametrize("stored", ["", "plain", "md5:x", "scrypt:1024:8:1:!!:!!", "scrypt:99999999:8:1:AA==:AA==",
                                    # more memory than MAX_SCRYPT_MEMORY: never even tried
                                    "scrypt:1048576:8:1:AAAAAAAAAAAAAAAAAAAAAA==:AAAA"])
def test_bad_stored_forms_never_verify(stored, mocker):
    spy = mocker.spy(users.hashlib, "scrypt")
    assert not users.verify_password("whatever-pass", stored)
    assert spy.call_count == 0  # refused before any work (a huge N must not allocate gigabytes)


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


@pytest.mark.parametrize("password", ["password\0", "pass\x00word", "password\n", "pass\tword", "pass\x7fword",
                                      "pass\x85word"])
def test_control_characters_refused_when_set(tmp_path, password):
    with pytest.raises(CloudError, match="control"):
        users.hash_password(password, n=1024)
    with pytest.raises(CloudError, match="control"):
        users.UserFile(str(tmp_path / "users"), group=None).add("alice", password)
    assert not (tmp_path / "users").exists()


def test_a_trailing_nul_is_another_password(tmp_path):
    # scrypt itself would accept "password1\0" for "password1" (seen with OpenSSL 3).
    stored = users.hash_password("password1", n=1024)
    assert users.verify_password("password1", stored)
    assert not users.verify_password("password1\0", stored)
    path = tmp_path / "users"
    path.write_text("alice:user:%s\n" % stored)
    uf = users.UserFile(str(path), group=None)
    assert uf.authenticate("alice", "password1") and uf.authenticate("alice", "password1\0") is None


def _weak_file(tmp_path, monkeypatch, target=2048):
    """A user file with an N=1024 hash while the module asks for N=target (cheap stand-ins for 2**15 and 2**17)."""
    monkeypatch.setattr(users, "SCRYPT_N", target)
    path = tmp_path / "users"
    path.write_text("alice:admin:%s\nbob:user:%s\n" % (users.hash_password("alice-password", n=1024),
                                                        users.hash_password("bob-password", n=1024)))
    os.chmod(path, 0o640)
    return path


def test_weak_hash_upgraded_at_the_next_login(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="condor_cloud.master.users")
    path = _weak_file(tmp_path, monkeypatch)
    uf = users.UserFile(str(path), group=None)
    assert uf.authenticate("alice", "wrong-password") is None
    assert "scrypt:1024:" in uf.get("alice").hash  # only a right password upgrades
    user = uf.authenticate("alice", "alice-password")
    assert user.is_admin and user.hash.startswith("scrypt:2048:8:1:")
    text = path.read_text()
    assert "alice:admin:scrypt:2048:8:1:" in text and "bob:user:scrypt:1024:8:1:" in text  # bob untouched
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    assert "upgraded the password hash of alice" in caplog.text
    # The new hash works, in this process and in a fresh one, and is not rewritten again.
    mtime = os.stat(path).st_mtime_ns
    assert uf.authenticate("alice", "alice-password")
    assert users.UserFile(str(path), group=None).authenticate("alice", "alice-password")
    assert os.stat(path).st_mtime_ns == mtime


def test_no_upgrade_over_a_concurrent_change(tmp_path, monkeypatch):
    path = _weak_file(tmp_path, monkeypatch)
    uf = users.UserFile(str(path), group=None)
    old = uf.get("alice")
    users.UserFile(str(path), group=None).set_password("alice", "newer-password")  # e.g. the CLI, meanwhile
    inode = os.stat(path).st_ino
    assert uf.upgrade_hash(old, "alice-password") is None
    assert os.stat(path).st_ino == inode  # not even rewritten unchanged
    assert uf.authenticate("alice", "newer-password") and uf.authenticate("alice", "alice-password") is None


def test_unwritable_user_file_logs_once_and_login_goes_on(tmp_path, monkeypatch, mocker, caplog):
    path = _weak_file(tmp_path, monkeypatch)
    uf = users.UserFile(str(path), group=None)
    before = path.read_text()
    # The packaged layout: /etc/condor-cloud is root's, so the API cannot create the lock or the new file.
    real_open = os.open

    def no_write(name, flags, *args):
        if str(name).startswith(str(path)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, flags, *args)

    mocker.patch("os.open", side_effect=no_write)
    spy = mocker.spy(users, "hash_password")
    for _ in range(3):
        uf._ok.clear()  # a cache miss each time: a fresh verification, as after cache_seconds
        assert uf.authenticate("alice", "alice-password").hash.startswith("scrypt:1024:")
    assert path.read_text() == before
    assert caplog.text.count("cannot upgrade the password hash of alice") == 1
    assert spy.call_count == 0  # not even one wasted (slow) hash: the lock fails first
    assert uf.authenticate("bob", "bob-password")  # other users: not retried either (same file version)
    assert caplog.text.count("cannot upgrade") == 1
