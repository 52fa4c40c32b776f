"""Issue 17 item 5: a damaged cache entry is never handed out.

Each fill records what the entry is (CACHE/.ids/<entry>: size, inode, mtime, fingerprint of its first and last
4 KiB); each reuse checks the entry against it in constant time, and a damaged entry is copied again under the
image's lock, with a line in the StarterLog (standard error) and in CACHE/.fills.log."""

import hashlib
import io
import os
import shutil
import time

import pytest

from condor_cloud.core import images
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.node.cache import IDS_DIR, ImageCache

from support import job_ad, make_qcow2

pytestmark = pytest.mark.subprocess  # qemu-img probes every fill


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def acquire(cloud, name="disk.img"):
    with images.open_store_image(str(cloud.store), name) as image:
        with ImageCache(str(cloud.cache)).acquire(image) as entry:
            return entry


@pytest.fixture
def filled(cloud):
    src = cloud.store / "disk.img"
    with open(str(src), "wb") as f:
        f.write(os.urandom(3 << 20))
    entry = acquire(cloud)
    assert entry.filled
    cloud.src_sum = sha256(str(src))
    return entry


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def zero_header_keep_mtime(path):
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(b"\0" * 512)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))   # an mtime can be set back: the fingerprint still sees it


def replace_by_a_copy(path):
    # Same bytes, size and mtime, another inode (e.g. restored from a backup): not the file the fill verified.
    shutil.copy2(path, path + ".copy")
    os.rename(path + ".copy", path)


def drop_the_record(path):
    os.unlink(os.path.join(os.path.dirname(path), IDS_DIR, os.path.basename(path)))


DAMAGE = {
    "truncated": (truncate, "it has 1572864 bytes, 3145728 when it was filled"),
    "header zeroed, mtime set back": (zero_header_keep_mtime, "its first or last bytes changed since its fill"),
    "replaced by a copy": (replace_by_a_copy, "it was replaced or written to since its fill"),
    "no fill record": (drop_the_record, "it has no fill record"),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_entry_is_refilled_and_logged(cloud, filled, capsys, how):
    spoil, why = DAMAGE[how]
    spoil(filled.path)
    capsys.readouterr()
    again = acquire(cloud)
    assert again.filled and again.path == filled.path
    assert sha256(again.path) == cloud.src_sum
    assert capsys.readouterr().err == ("condor-cloud prepare: cache entry %s is damaged (%s): copying it again from "
                                       "the store\n" % (filled.path, why))
    log = (cloud.cache / ".fills.log").read_text().splitlines()
    assert [line.split()[2].split("=")[0] for line in log] == ["entry", "damaged", "entry"]
    assert log[1].split()[2:] == ["damaged=%s" % filled.filename, "reason=%s" % why.replace(" ", "_")]
    assert not acquire(cloud).filled                      # the refill is intact: reused from now on


def test_an_intact_entry_is_reused_without_reading_it(cloud, filled, capsys, mocker):
    fill = mocker.spy(ImageCache, "_fill")
    assert not acquire(cloud).filled and fill.call_count == 0
    assert "damaged" not in capsys.readouterr().err


def test_the_prepare_hook_never_boots_a_truncated_base(cloud, capsys):
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=os.urandom(1 << 20))
    run = lambda: prepare_hook.main([], io.StringIO(job_ad()), io.StringIO(), starter_pid=os.getpid())  # noqa: E731
    assert run() == 0
    [entry] = ImageCache(str(cloud.cache)).entries()
    truncate(entry.path)
    capsys.readouterr()
    assert run() == 0
    err = capsys.readouterr().err
    assert "condor-cloud prepare: cache entry %s is damaged (it has " % entry.path in err
    assert "condor-cloud prepare: filled cache entry %s\n" % entry.path in err
    assert sha256(entry.path) == sha256(str(cloud.store / "demo.qcow2"))


def test_eviction_removes_the_fill_record_too(cloud, filled):
    ImageCache(str(cloud.cache)).evict(1, lambda: set())
    assert os.listdir(str(cloud.cache / IDS_DIR)) == []


def test_the_reuse_check_costs_constant_time(cloud, tmp_path):
    # Measured, not asserted (timing depends on the machine): printed with `pytest -s` (see also
    # bench/cache_reuse_check.py). The check reads 8 KiB whatever the entry's size.
    cache = ImageCache(str(cloud.cache))
    for size in (1 << 20, 1 << 30):
        name = "disk-%d.img" % size
        with open(str(cloud.store / name), "wb") as f:
            f.truncate(size)
            f.write(os.urandom(4096))
        entry = acquire(cloud, name)
        n = 2000
        started = time.perf_counter()
        for _ in range(n):
            assert cache.damage(entry, size) == ""
        per = (time.perf_counter() - started) / n
        print("reuse check of a %d MiB entry: %.1f us" % (size >> 20, per * 1e6))


def _killed_at_the_record(cache_root, store, started, after):
    real = ImageCache._write_record

    def write_record(self, tmp_path, final_name):
        if after:
            real(self, tmp_path, final_name)          # the record is in place, the entry not yet
        else:                                         # half-way through writing the record
            with open(os.path.join(self.root, ".fill-%s.rec.%d" % (final_name, os.getpid())), "w") as f:
                f.write("3145")
        started.set()
        time.sleep(60)                                # ... and then the process is killed

    ImageCache._write_record = write_record
    with images.open_store_image(store, "disk.img") as image:
        with ImageCache(cache_root).acquire(image):
            pass


@pytest.mark.parametrize("after", [False, True], ids=["writing the record", "before the rename"])
def test_a_fill_killed_at_its_record_leaves_no_entry_and_the_next_fill_is_whole(cloud, after):
    import multiprocessing
    import signal

    src = cloud.store / "disk.img"
    with open(str(src), "wb") as f:
        f.write(os.urandom(1 << 20))
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    victim = ctx.Process(target=_killed_at_the_record, args=(str(cloud.cache), str(cloud.store), started, after))
    victim.start()
    assert started.wait(30)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    cache = ImageCache(str(cloud.cache))
    assert cache.entries() == []
    entry = acquire(cloud)
    assert entry.filled and sha256(entry.path) == sha256(str(src)) and cache.damage(entry) == ""
    assert [n for n in os.listdir(str(cloud.cache)) if n.startswith(".fill-")] == []
