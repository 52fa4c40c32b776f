"""Part 2: a cold cache fill (ImageCache.acquire) against cp, hot and cold source pages; and on XFS with reflink."""

import os
import shutil
import statistics
import tempfile
import time

from condor_cloud.core import images as cc_images
from condor_cloud.core import qemuimg as cc_qemuimg
from condor_cloud.node.cache import ImageCache

from ..common import MiB, QEMU_IMG, SEED, log
from ..common import run as run_cmd
from ..files import (allocated, fs_info, page_cache_evict, page_cache_load, resident_fraction, write_random,
                     xfs_reflink_mount)
from ..report import Row, fmt_bytes
from ..store import QCOW_FULL, RAW_SMALL, RAW_SPARSE

NUMBER, NAME, TITLE, POOL = "2", "fill", "2. Cache fill, cold", False


def fill(store, name, root):
    """One cold fill with ImageCache.acquire into a fresh cache dir under root: (seconds, entry allocated)."""
    cache = tempfile.mkdtemp(prefix="cache.", dir=root)
    try:
        t0 = time.perf_counter()
        with cc_images.open_store_image(store, name) as image:
            with ImageCache(cache, QEMU_IMG).acquire(image, cc_qemuimg.expected_format(name)) as entry:
                pass
        return time.perf_counter() - t0, entry.allocated
    finally:
        shutil.rmtree(cache)


def cp(src, root, mode="--sparse=always"):
    """cp into a fresh dir under root: (seconds for cp, seconds for cp + fsync of the copy, allocated)."""
    d = tempfile.mkdtemp(prefix="cp.", dir=root)
    try:
        dst = os.path.join(d, "copy")
        t0 = time.perf_counter()
        run_cmd(["cp", mode, src, dst])
        t1 = time.perf_counter()
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t0, allocated(dst)
    finally:
        shutil.rmtree(d)


def run_plain(ctx):
    n = 3 if ctx.args.quick else 7
    root = os.path.join(ctx.work, "p2")
    os.makedirs(root)
    results = {}
    residency = {}
    combos = [(img, temp) for img in (RAW_SPARSE, QCOW_FULL) for temp in ("hot", "cold")]
    log("part 2: cold cache fills vs cp, %d interleaved rounds" % n)
    for _ in range(n):
        for img, temp in ctx.shuffled(combos):
            src = os.path.join(ctx.store, img)
            for op in ctx.shuffled(["fill", "cp"]):
                (page_cache_load if temp == "hot" else page_cache_evict)(src)
                residency.setdefault((img, temp), []).append(resident_fraction(src))
                if img == RAW_SPARSE and temp == "hot":  # the verify variant below reads the holes too
                    page_cache_evict(src)
                    page_cache_load(src)
                    residency[(img, temp)][-1] = resident_fraction(src)
                r = results.setdefault((img, temp), {"fill": [], "cp": [], "cpsync": [], "alloc": [],
                                                     "cpalloc": []})
                if op == "fill":
                    dt, alloc = fill(ctx.store, img, root)
                    r["fill"].append(dt)
                    r["alloc"].append(alloc)
                else:
                    t_cp, t_sync, alloc = cp(src, root)
                    r["cp"].append(t_cp)
                    r["cpsync"].append(t_sync)
                    r["cpalloc"].append(alloc)
    for img, temp in combos:
        r = results[(img, temp)]
        src = os.path.join(ctx.store, img)
        data = allocated(src)
        label = "%s (%s of data), source %s" % ("1 GiB raw" if img == RAW_SPARSE else "512 MiB qcow2",
                                               fmt_bytes(data), "hot" if temp == "hot" else "cold")
        thr = [data / t for t in r["fill"]]
        ctx.rows.append(Row("2", "cold fill throughput, " + label, thr, "`cp --sparse=always` + fsync",
                             [data / t for t in r["cpsync"]], unit="B/s", target=(">=", 0.9)))
        ctx.rows.append(Row("2", "cold fill throughput, " + label, thr, "`cp --sparse=always` (no fsync)",
                             [data / t for t in r["cp"]], unit="B/s"))
        if temp == "hot":
            ctx.rows.append(Row("2", "cache entry allocated vs source, " + label.split(", source")[0],
                                 r["alloc"], "source allocated", [data], unit="B", target=("<=", 1.02)))
    # The checksum variant: the same raw image with a .sha256 sidecar (the cache verifies the copy).
    rounds = 2 if ctx.args.quick else 4
    sums, cps = [], []
    src = os.path.join(ctx.store_sum, RAW_SPARSE)
    for _ in range(rounds):
        for op in ctx.shuffled(["fill", "cp"]):
            page_cache_load(src)
            if op == "fill":
                sums.append(fill(ctx.store_sum, RAW_SPARSE, root)[0])
            else:
                cps.append(cp(src, root)[1])
    data = allocated(src)
    ctx.rows.append(Row("2", "cold fill throughput, 1 GiB raw with .sha256 sidecar (verify), source hot",
                         [data / t for t in sums], "`cp --sparse=always` + fsync", [data / t for t in cps],
                         unit="B/s"))
    res = {k: [x for x in v if x is not None] for k, v in residency.items()}
    ctx.note("2", "Fill = `open_store_image` + `ImageCache(fresh dir).acquire()` in-process (copy_file_range of the "
              "data segments, fsync, `qemu-img info` (+ `qemu-img check` for qcow2), chmod, rename, directory "
              "fsync), on %s, same filesystem as the source. Throughput = source allocated bytes / wall time. The "
              "target's baseline is `cp --sparse=always` followed by an fsync of the copy (the cache must fsync; "
              "plain cp leaves the data dirty in the page cache, shown as a second, informational baseline)."
              % fs_info(root))
    ctx.note("2", "Source pages: 'hot' = the source's data read just before each run; 'cold' = evicted with "
              "fsync + POSIX_FADV_DONTNEED just before each run (per file; /proc/sys/vm/drop_caches is not used "
              "on this shared machine). Resident share of the source before the runs (fincore), median: %s. "
              "The disk is virtual: 'cold' may still be served from the hypervisor's cache."
              % ", ".join("%s %s %.0f%%" % (img, temp, 100 * statistics.median(v)) for (img, temp), v in
                          sorted(res.items()) if v))


def run_xfs(ctx):
    if not shutil.which("mkfs.xfs"):
        ctx.rows.append(Row("2", "reflink (XFS) fill, 1 GiB vs 16 MiB raw",
                             note="not measured: mkfs.xfs missing (apt-get install xfsprogs)"))
        return
    n = 3 if ctx.args.quick else 9
    xdir = os.path.join(ctx.work, "xfs-part")
    os.makedirs(xdir)
    log("part 2: loop-mounting an XFS (reflink=1) image")
    try:
        mount = xfs_reflink_mount(xdir)
        mnt = mount.__enter__()
    except Exception as exc:
        ctx.rows.append(Row("2", "reflink (XFS) fill, 1 GiB vs 16 MiB raw",
                             note="not measured: loop-mounted XFS failed: %s" % exc))
        return
    try:
        store = os.path.join(mnt, "store")
        os.makedirs(store)
        run_cmd(["cp", "--sparse=always", os.path.join(ctx.store, RAW_SPARSE), os.path.join(store, RAW_SPARSE)])
        write_random(os.path.join(store, RAW_SMALL), 16 * MiB, SEED + 2)
        caches = os.path.join(mnt, "caches")
        os.makedirs(caches)
        fills = {RAW_SPARSE: [], RAW_SMALL: []}
        reflinks = {RAW_SPARSE: [], RAW_SMALL: []}
        used = []
        log("part 2: XFS reflink fills, %d interleaved rounds" % n)
        for _ in range(n):
            for img, op in ctx.shuffled([(i, o) for i in fills for o in ("fill", "cp")]):
                src = os.path.join(store, img)
                page_cache_load(src)
                if op == "fill":
                    st0 = os.statvfs(mnt)
                    cache = tempfile.mkdtemp(prefix="cache.", dir=caches)
                    t0 = time.perf_counter()
                    with cc_images.open_store_image(store, img) as image:
                        with ImageCache(cache, QEMU_IMG).acquire(image, "raw"):
                            pass
                    fills[img].append(time.perf_counter() - t0)
                    st1 = os.statvfs(mnt)
                    if img == RAW_SPARSE:
                        used.append((st0.f_bfree - st1.f_bfree) * st0.f_frsize)
                    shutil.rmtree(cache)
                else:
                    reflinks[img].append(cp(src, caches, "--reflink=always")[1])
        ctx.rows += [
            Row("2", "reflink (XFS) cold fill, 1 GiB raw (256 MiB data)", fills[RAW_SPARSE],
                "same, 16 MiB raw (16 MiB data)", fills[RAW_SMALL], target=("<=", 1.25)),
            Row("2", "reflink (XFS) `cp --reflink=always` + fsync, 1 GiB raw", reflinks[RAW_SPARSE],
                "same, 16 MiB raw", reflinks[RAW_SMALL]),
            Row("2", "reflink (XFS) cold fill, 1 GiB raw (256 MiB data)", fills[RAW_SPARSE],
                "`cp --reflink=always` + fsync", reflinks[RAW_SPARSE]),
            Row("2", "reflink (XFS) cold fill, 16 MiB raw", fills[RAW_SMALL],
                "`cp --reflink=always` + fsync", reflinks[RAW_SMALL]),
        ]
        ctx.note("2", "Reflink: a fresh %s loop-mounted from a sparse file under %s, source and cache on it; "
                  "copy_file_range clones extents there. Free space consumed by one fill of the 1 GiB raw image "
                  "(256 MiB of data), median: %s (a real copy would take 256 MiB)."
                  % (fs_info(mnt), ctx.work, fmt_bytes(statistics.median(used))))
    finally:
        mount.__exit__(None, None, None)


def run(ctx):
    run_plain(ctx)
    run_xfs(ctx)


STEPS = (run_plain, run_xfs)   # the runner runs them one by one: an error in one does not skip the other
