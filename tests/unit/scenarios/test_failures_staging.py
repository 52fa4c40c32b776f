"""Issue 17 item 7: what a killed `condor-cloud image add` leaves in STORE/staging/ is removed, by the next add
and by the periodic sweep (`condor-cloud image sweep`, run hourly by condor-cloud-image-sweep.timer)."""

import multiprocessing
import os
import signal
import time

import pytest
from click.testing import CliRunner

from condor_cloud.master import cli

from support import REPO



@pytest.fixture
def store(cloud, mocker):
    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_API_KEYS_DIR = %s\n" % (cloud.root / "users", cloud.root / "keys"))
    mocker.patch("condor_cloud.core.qemuimg.probe", return_value="raw")
    return cloud


def staging(cloud):
    return sorted(os.listdir(str(cloud.store / "staging")))


def _killed_add(source, started):
    def copy_half(src_fd, dst_fd, size, label):
        os.write(dst_fd, os.pread(src_fd, size // 2, 0))
        started.set()
        time.sleep(60)                                  # ... and then the process is killed

    cli._copy_with_progress = copy_half
    cli.add_image(cli._settings(), source, "big.img")


@pytest.mark.subprocess   # a real process, killed with SIGKILL half-way through its copy
def test_a_killed_image_add_leaves_nothing_after_the_next_add(store, tmp_path):
    big = tmp_path / "big.img"
    big.write_bytes(os.urandom(1 << 20))
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    victim = ctx.Process(target=_killed_add, args=(str(big), started))
    victim.start()
    assert started.wait(30)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    assert staging(store) == ["big.img.%d.tmp" % victim.pid]      # the partial copy
    small = tmp_path / "small.img"
    small.write_bytes(b"x" * 4096)
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2; later versions keep stderr apart anyway
    except TypeError:
        runner = CliRunner()
    r = runner.invoke(cli.main_group, ["image", "add", str(small)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert staging(store) == []
    assert sorted(os.listdir(str(store.store))) == ["small.img", "small.img.sha256", "staging"]
    assert r.stderr.splitlines()[0] == "removed %s/big.img.%d.tmp, left by an interrupted image add" % (
        store.store / "staging", victim.pid)


@pytest.mark.subprocess   # a dead pid
def test_the_sweep_removes_leftovers_of_dead_reused_or_hung_writers_only(store, tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    me = os.getpid()
    now = time.time()
    made = {
        "dead.img.%d.tmp" % dead.pid: now,                 # its writer is gone
        "dead.img.%d.tmp.sha256" % dead.pid: now,
        "reused.img.%d.tmp" % me: cli._process_started(me) - 60,  # written before this process started: a
                                                                     # reused pid (and younger than the bound)
        "live.img.%d.tmp" % me: now,                        # this process writes it: kept
        "mine.qcow2": now - 30 * 86400,                     # the administrator's own staging: never touched
        "notes.1.tmp.bak": now - 30 * 86400,
    }
    for name, mtime in made.items():
        path = store.store / "staging" / name
        path.write_bytes(b"partial")
        os.utime(str(path), (mtime, mtime))
    removed = cli.sweep_staging(str(store.store), now=now)
    assert sorted(removed) == sorted(["dead.img.%d.tmp" % dead.pid, "dead.img.%d.tmp.sha256" % dead.pid,
                                      "reused.img.%d.tmp" % me])
    assert staging(store) == sorted(["live.img.%d.tmp" % me, "mine.qcow2", "notes.1.tmp.bak"])
    # A live writer's copy older than the bound is a hung add: removed.
    assert cli.sweep_staging(str(store.store), max_age=0, now=time.time() + 5) == ["live.img.%d.tmp" % me]


@pytest.mark.subprocess   # a dead pid
def test_image_sweep_command(store):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    (store.store / "staging" / ("x.img.%d.tmp" % dead.pid)).write_bytes(b"partial")
    r = CliRunner().invoke(cli.main_group, ["image", "sweep"], catch_exceptions=False)
    assert r.exit_code == 0
    assert r.output == "removed %s\n" % (store.store / "staging" / ("x.img.%d.tmp" % dead.pid))
    assert staging(store) == []
    assert CliRunner().invoke(cli.main_group, ["image", "sweep"]).output == ""


def test_the_sweep_timer_runs_the_sweep():
    with open(os.path.join(REPO, "systemd", "condor-cloud-image-sweep.service")) as f:
        service = f.read()
    with open(os.path.join(REPO, "systemd", "condor-cloud-image-sweep.timer")) as f:
        timer = f.read()
    assert "\nExecStart=/usr/bin/condor-cloud image sweep\n" in service and "\nType=oneshot\n" in service
    assert "\nOnUnitActiveSec=1h\n" in timer and "\nWantedBy=timers.target\n" in timer
