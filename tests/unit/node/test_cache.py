"""The node cache: one copy per image version under concurrency, nothing partial after a crash or a full disk,
holes kept, checksums verified, and eviction that never touches a base in use."""

import contextlib
import hashlib
import multiprocessing
import os
import signal
import subprocess
import threading
import time

import pytest

from condor_cloud.node import cache as cache_mod
from condor_cloud.core import errors, images
from condor_cloud.node import instance_dirs
from condor_cloud.node.cache import ImageCache
from condor_cloud.core.errors import CloudError

from support import make_qcow2

pytestmark = pytest.mark.subprocess  # qemu-img probes every fill for real


def write_sparse(path, size, extents):
    """A sparse file of `size` bytes with random data at each (offset, length)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in extents:
            f.seek(offset)
            f.write(os.urandom(length))
    return path


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def acquire(cache_root, store, name):
    with images.open_store_image(str(store), name) as image:
        with ImageCache(str(cache_root)).acquire(image) as entry:
            return entry


def test_fill_makes_a_read_only_complete_copy(cloud):
    src = write_sparse(cloud.store / "disk.img", 4 << 20, [(0, 4096), (1 << 20, 65536)])
    entry = acquire(cloud.cache, cloud.store, "disk.img")
    assert entry.format == "raw" and entry.image == "disk.img"
    assert sha256(entry.path) == sha256(src)
    assert os.stat(entry.path).st_mode & 0o777 == 0o444
    assert [n for n in os.listdir(cloud.cache) if n.startswith(".fill-")] == []


def test_sparse_image_stays_sparse(cloud):
    size = 64 << 20
    src = write_sparse(cloud.store / "sparse.img", size, [(0, 1 << 20), (32 << 20, 1 << 20)])
    src_blocks = os.stat(src).st_blocks
    assert src_blocks * 512 < size // 4  # the test file is really sparse
    entry = acquire(cloud.cache, cloud.store, "sparse.img")
    assert os.stat(entry.path).st_blocks <= src_blocks
    assert sha256(entry.path) == sha256(src)


def test_second_acquire_reuses_the_entry(cloud, mocker):
    write_sparse(cloud.store / "disk.img", 1 << 20, [(0, 4096)])
    first = acquire(cloud.cache, cloud.store, "disk.img")
    fill = mocker.spy(ImageCache, "_fill")
    second = acquire(cloud.cache, cloud.store, "disk.img")
    assert second.path == first.path and fill.call_count == 0


def test_concurrent_fills_in_threads_copy_once(cloud, mocker):
    write_sparse(cloud.store / "disk.img", 8 << 20, [(0, 8 << 20)])
    fill = mocker.spy(ImageCache, "_fill")
    results, failures = [], []

    def worker():
        try:
            results.append(acquire(cloud.cache, cloud.store, "disk.img").path)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == [] and len(results) == 8 and len(set(results)) == 1
    assert fill.call_count == 1
    assert len(ImageCache(str(cloud.cache)).entries()) == 1


def _process_worker(cache_root, store, log):
    real_fill = ImageCache._fill

    def counting_fill(self, image, expected):
        with open(log, "a") as f:
            f.write("%d\n" % os.getpid())
        return real_fill(self, image, expected)

    ImageCache._fill = counting_fill
    acquire(cache_root, store, "disk.img")


def test_concurrent_fills_in_processes_copy_once(cloud, tmp_path):
    write_sparse(cloud.store / "disk.img", 16 << 20, [(0, 16 << 20)])
    log = tmp_path / "fills.log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_worker, args=(str(cloud.cache), str(cloud.store), str(log)))
             for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 8
    assert len(log.read_text().split()) == 1
    assert len(ImageCache(str(cloud.cache)).entries()) == 1
    assert len((cloud.cache / ".fills.log").read_text().splitlines()) == 1


def _slow_fill(cache_root, store, started):
    real_copy = cache_mod.copy_sparse

    def slow_copy(src, dst, size):
        os.ftruncate(dst, size)
        os.pwrite(dst, os.pread(src, 1 << 20, 0), 0)  # half-way: some data written ...
        started.set()
        time.sleep(60)  # ... and then the process is killed
        return real_copy(src, dst, size)

    cache_mod.copy_sparse = slow_copy
    acquire(cache_root, store, "disk.img")


def test_fetch_killed_half_way_leaves_no_entry_and_next_fill_works(cloud):
    src = write_sparse(cloud.store / "disk.img", 4 << 20, [(0, 4 << 20)])
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    victim = ctx.Process(target=_slow_fill, args=(str(cloud.cache), str(cloud.store), started))
    victim.start()
    assert started.wait(30)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    cache = ImageCache(str(cloud.cache))
    assert cache.entries() == []  # the temp file is never taken as complete
    entry = acquire(cloud.cache, cloud.store, "disk.img")
    assert sha256(entry.path) == sha256(src)
    assert [n for n in os.listdir(cloud.cache) if n.startswith(".fill-")] == []


@contextlib.contextmanager
def small_tmpfs(path, size):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_full_filesystem_gives_clear_error_and_keeps_the_cache_intact(cloud, tmp_path):
    write_sparse(cloud.store / "small.img", 1 << 20, [(0, 1 << 20)])
    write_sparse(cloud.store / "big.img", 8 << 20, [(0, 8 << 20)])
    with small_tmpfs(tmp_path / "fullfs", "4m") as root:
        small = acquire(root, cloud.store, "small.img")
        before = sha256(small.path)
        with pytest.raises(CloudError) as exc:
            acquire(root, cloud.store, "big.img")
        assert exc.value.code == errors.NO_SPACE
        assert "not enough space in the image cache %s" % root in exc.value.message
        cache = ImageCache(str(root))
        assert [e.image for e in cache.entries()] == ["small.img"]
        assert sha256(small.path) == before
        assert [n for n in os.listdir(root) if n.startswith(".fill-")] == []


def test_checksum_mismatch_is_refused(cloud):
    write_sparse(cloud.store / "disk.img", 1 << 20, [(0, 4096)])
    (cloud.store / "disk.img.sha256").write_text("0" * 64 + "  disk.img\n")
    with pytest.raises(CloudError) as exc:
        acquire(cloud.cache, cloud.store, "disk.img")
    assert exc.value.code == errors.CHECKSUM_MISMATCH
    assert ImageCache(str(cloud.cache)).entries() == []


def test_checksum_match_is_accepted(cloud):
    src = write_sparse(cloud.store / "disk.img", 1 << 20, [(0, 4096)])
    (cloud.store / "disk.img.sha256").write_text(sha256(src) + "\n")
    assert acquire(cloud.cache, cloud.store, "disk.img").format == "raw"


def test_corrupt_qcow2_is_refused(cloud):
    (cloud.store / "bad.qcow2").write_bytes(os.urandom(1 << 16))
    with images.open_store_image(str(cloud.store), "bad.qcow2") as image:
        with pytest.raises(CloudError) as exc:
            with ImageCache(str(cloud.cache)).acquire(image, "qcow2"):
                pass
    assert exc.value.code == errors.IMAGE_INVALID
    assert "should be qcow2" in exc.value.message
    assert ImageCache(str(cloud.cache)).entries() == []


def test_truncated_qcow2_is_refused(cloud, tmp_path):
    good = make_qcow2(tmp_path / "good.qcow2", "16M", data=os.urandom(1 << 20))
    data = good.read_bytes()
    (cloud.store / "cut.qcow2").write_bytes(data[: len(data) // 2])
    with images.open_store_image(str(cloud.store), "cut.qcow2") as image:
        with pytest.raises(CloudError) as exc:
            with ImageCache(str(cloud.cache)).acquire(image, "qcow2"):
                pass
    assert exc.value.code == errors.IMAGE_INVALID


def test_image_with_a_backing_file_is_refused(cloud, tmp_path):
    make_qcow2(cloud.outside / "base.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(cloud.outside / "base.qcow2"),
                    str(cloud.store / "sneaky.qcow2")], check=True)
    with pytest.raises(CloudError) as exc:
        acquire(cloud.cache, cloud.store, "sneaky.qcow2")
    assert "backing file" in exc.value.message


def test_image_with_an_external_data_file_is_refused_and_leaves_no_entry(cloud):
    # `qemu-img amend -o data_file=` (or create -o data_file=) makes a qcow2 whose guest disk is a host file.
    host_file = cloud.outside / "host-file"
    host_file.write_bytes(b"root-only" + b"\0" * 65536)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=%s" % host_file,
                    str(cloud.store / "mapped.qcow2"), "1M"], check=True)
    with pytest.raises(CloudError) as exc:
        acquire(cloud.cache, cloud.store, "mapped.qcow2")
    assert exc.value.code == errors.IMAGE_INVALID
    assert "image 'mapped.qcow2' has an external data file; images in the store must be standalone" \
        in exc.value.message
    assert ImageCache(str(cloud.cache)).entries() == []
    assert [n for n in os.listdir(cloud.cache) if n.startswith(".fill-")] == []


def test_new_store_version_gets_a_new_entry_and_the_old_one_stays(cloud):
    write_sparse(cloud.store / "disk.img", 1 << 20, [(0, 4096)])
    old = acquire(cloud.cache, cloud.store, "disk.img")
    old_sum = sha256(old.path)
    write_sparse(cloud.store / "staging" / "disk.img", 1 << 20, [(0, 8192)])
    os.rename(str(cloud.store / "staging" / "disk.img"), str(cloud.store / "disk.img"))
    new = acquire(cloud.cache, cloud.store, "disk.img")
    assert new.path != old.path and new.version != old.version
    assert sha256(old.path) == old_sum  # a running instance's base is untouched


def test_eviction_removes_lru_entries_but_never_one_in_use(cloud):
    cache = ImageCache(str(cloud.cache))
    entries = {}
    for i, name in enumerate(["a.img", "b.img", "c.img"]):
        write_sparse(cloud.store / name, 1 << 20, [(0, 1 << 20)])
        entries[name] = acquire(cloud.cache, cloud.store, name)
        os.utime(entries[name].path, (1000 + i, 1000 + i))  # a.img least recently used
    in_use = {entries["a.img"].filename}
    removed = cache.evict(5 << 19, lambda: in_use)  # 2.5 MiB: two entries fit
    assert [e.image for e in removed] == ["b.img"]
    assert sorted(e.image for e in cache.entries()) == ["a.img", "c.img"]


def test_eviction_skips_an_entry_whose_image_lock_is_held(cloud):
    cache = ImageCache(str(cloud.cache))
    write_sparse(cloud.store / "a.img", 1 << 20, [(0, 1 << 20)])
    acquire(cloud.cache, cloud.store, "a.img")
    with cache.locked("a.img"):
        # simulate another process: a second, separate open file description
        def other():
            return ImageCache(str(cloud.cache)).evict(1, lambda: set())
        result = []
        t = threading.Thread(target=lambda: result.append(other()))
        t.start()
        t.join(10)
    assert result == [[]]
    assert len(cache.entries()) == 1


def test_eviction_uses_instance_references(cloud):
    cache = ImageCache(str(cloud.cache))
    write_sparse(cloud.store / "a.img", 1 << 20, [(0, 1 << 20)])
    entry = acquire(cloud.cache, cloud.store, "a.img")
    inst = instance_dirs.create(str(cloud.instances), "1.0-0000abcd", {"uuid": "u", "mac": "m"}, instance_dirs.Starter.of(os.getpid()))
    inst.add_base(entry.filename)
    assert cache.evict(1, lambda: instance_dirs.referenced_bases(str(cloud.instances))) == []
    instance_dirs.remove(str(cloud.instances), inst.id)
    assert [e.filename for e in cache.evict(1, lambda: instance_dirs.referenced_bases(str(cloud.instances)))] \
        == [entry.filename]
