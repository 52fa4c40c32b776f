"""The shared state directory and database of sessions and login counters (state.py)."""

import os
import stat

import pytest

from condor_cloud.master.api import state as state_mod
from condor_cloud.master.api import throttle
from condor_cloud.master.api.state import StateError, StateStore, default_dir, private_dir


def test_private_dir_is_made_0700(tmp_path):
    d = tmp_path / "run"
    assert private_dir(str(d)) == str(d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    os.chmod(d, 0o755)
    private_dir(str(d))
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_private_dir_refuses_a_symlink_or_someone_elses_directory(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(PermissionError):
        private_dir(str(tmp_path / "link"))
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PermissionError):
            private_dir(str(theirs))


def test_default_dir_order(tmp_path, monkeypatch):
    monkeypatch.setattr(state_mod, "STATE_DIR", str(tmp_path / "run" / "condor-cloud-api"))
    monkeypatch.setattr(state_mod, "FALLBACK_DIR", str(tmp_path / "tmp" / "condor-cloud-api-0"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "systemd"))
    assert default_dir() == str(tmp_path / "systemd")
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    assert default_dir() == str(tmp_path / "run" / "condor-cloud-api")
    # Not creatable (here: a file in the way, as /run is for an unprivileged account): the private fallback.
    (tmp_path / "run2").write_text("")
    monkeypatch.setattr(state_mod, "STATE_DIR", str(tmp_path / "run2" / "condor-cloud-api"))
    assert default_dir() == str(tmp_path / "tmp" / "condor-cloud-api-0")
    (tmp_path / "tmp2").write_text("")
    monkeypatch.setattr(state_mod, "FALLBACK_DIR", str(tmp_path / "tmp2" / "x"))
    with pytest.raises(StateError, match="no usable directory"):
        default_dir()


def test_a_damaged_database_is_replaced(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    (d / state_mod.DB_NAME).write_bytes(b"this is not an SQLite database at all" * 100)
    store = StateStore(str(d))
    throttle.LoginThrottle(store).failed("192.0.2.1", "alice")
    assert store.query("SELECT count(*) FROM buckets") == [(2,)]


def test_drained_counters_are_forgotten(tmp_path):
    now = [1000.0]
    t = throttle.LoginThrottle(StateStore(str(tmp_path / "s")), clock=lambda: now[0])
    for i in range(50):
        t.failed("192.0.2.%d" % i, "name%d" % i)
    now[0] += 2 * max(throttle.CLIENT_WINDOW, throttle.NAME_WINDOW) + 2
    t.failed("192.0.2.200", "")
    assert t.state.query("SELECT key FROM buckets") == [("c:192.0.2.200",)]


def test_connections_are_per_process(tmp_path, monkeypatch):
    # The application is built before gunicorn forks: a worker must open its own connection.
    store = StateStore(str(tmp_path / "s"))
    first = store.connection()
    assert store.connection() is first
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert store.connection() is not first
