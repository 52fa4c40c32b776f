"""The access key store (condor_cloud/master/access_keys.py): the file (format, atomic rewrite, mode and owner,
damaged content), limits, names. `condor-cloud user access-key`: test_cli.py; the page /api/access_keys:
api/test_access_key_views.py; the EC2 server's settings: ec2/test_config.py."""

import json
import os
import re
import stat

import pytest

from condor_cloud.core.errors import CloudError
from condor_cloud.master import access_keys as ak
from condor_cloud.master.access_keys import AccessKeyStore, NoSuchAccessKey


@pytest.fixture
def store(tmp_path):
    return AccessKeyStore(str(tmp_path / "ec2" / "access-keys"))


def test_create_list_delete(store):
    a1 = store.create("alice", now=100)
    a2 = store.create("alice", now=200)
    b = store.create("bob")
    assert re.fullmatch(r"AKCC[A-Z2-7]{16}", a1.id) and len(a1.secret) == 40 and a1.id != a2.id
    assert [k.id for k in store.list("alice")] == [a1.id, a2.id]
    assert store.get(b.id).secret == b.secret and store.get("AKCCNOTAKEYNOTAKEY22") is None
    with pytest.raises(NoSuchAccessKey):
        store.delete(b.id, user="alice")          # another user's key: as if missing
    assert store.delete(a1.id, user="alice").id == a1.id
    assert [k.id for k in store.list()] == [a2.id, b.id]
    assert store.delete_user("alice") == 1 and store.list("alice") == []


def test_the_secret_never_shows_in_a_repr_or_the_public_view(store):
    key = store.create("alice")
    assert key.secret not in repr(key) and key.secret not in json.dumps(key.public())


def test_limit_per_user(store):
    for _ in range(ak.MAX_PER_USER):
        store.create("alice")
    with pytest.raises(CloudError, match="delete one first"):
        store.create("alice")
    store.create("bob")


def test_bad_user_names_are_refused(store):
    for name in ("Alice", "a:b", "", "x" * 40, "../x"):
        with pytest.raises(CloudError):
            store.create(name)
    assert not os.path.exists(store.path)


def test_file_format_mode_and_atomic_rewrite(store):
    key = store.create("alice", now=1700000000)
    text = open(store.path).read()
    assert "%s:alice:1700000000:%s\n" % (key.id, key.secret) in text
    st = os.stat(store.path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert stat.S_IMODE(os.stat(os.path.dirname(store.path)).st_mode) == 0o750
    os.chmod(store.path, 0o666)        # an administrator's mistake is not kept: never world-readable
    store.create("bob")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o660
    assert os.stat(store.path).st_ino != st.st_ino      # replaced by rename, never rewritten in place
    assert sorted(os.listdir(os.path.dirname(store.path))) == ["access-keys", "access-keys.lock"]


def test_a_new_file_takes_its_directorys_owner(store, monkeypatch):
    os.makedirs(os.path.dirname(store.path), mode=0o750)
    calls = []
    monkeypatch.setattr(os, "stat", _fake_dir_owner(os.stat, os.path.dirname(store.path), 4242, 4343))
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
    store.create("alice")
    assert calls == [(4242, 4343)]


def _fake_dir_owner(real, directory, uid, gid):
    def fake(path, *a, **kw):
        st = real(path, *a, **kw)
        if path == directory:
            values = list(st)
            values[stat.ST_UID], values[stat.ST_GID] = uid, gid
            return os.stat_result(values)
        return st
    return fake


def test_a_damaged_file_is_an_internal_error_and_is_not_rewritten(store):
    store.create("alice")
    with open(store.path, "a") as f:
        f.write("AKCCAAAAAAAAAAAAAAAA:alice:1:short\n")
    before = open(store.path).read()
    with pytest.raises(CloudError) as exc:
        store.load()
    assert exc.value.code == 16 and "line 3" in str(exc.value)
    with pytest.raises(CloudError):
        store.create("bob")
    assert open(store.path).read() == before


def test_reads_are_cached_until_the_file_changes(store):
    key = store.create("alice")
    assert store.get(key.id)
    other = AccessKeyStore(store.path)
    other.delete(key.id)
    assert store.get(key.id) is None
