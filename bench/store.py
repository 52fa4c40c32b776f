"""The image store of parts 1-3, made fresh in the work directory for each run (names end in .qcow2/.raw so the
cache checks the format they promise)."""

import os
import subprocess

from .common import GiB, MiB, QEMU_IMG, SEED, log, run
from .files import page_cache_evict, write_random, write_random_extents

P1_SMALL = "small16m.qcow2"      # part 1: 16 MiB qcow2, fully preallocated
P1_BIG = "big1g.qcow2"           # part 1: 1 GiB qcow2, fully preallocated
RAW_SPARSE = "sparse1g.raw"      # part 2/3: 1 GiB raw, 256 MiB of random data in scattered extents
QCOW_FULL = "full512m.qcow2"     # part 2/3: 512 MiB qcow2 of random data (qemu-img convert from raw)
RAW_SMALL = "small16m.raw"       # part 2 on XFS: 16 MiB raw of random data


def make_images(ctx):
    """ctx.store: the images above; ctx.store_sum: RAW_SPARSE again with a .sha256 sidecar."""
    ctx.store = os.path.join(ctx.work, "store")
    os.makedirs(ctx.store)
    log("creating images in %s" % ctx.store)
    for name, size in ((P1_SMALL, 16 * MiB), (P1_BIG, 1 * GiB)):
        run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "preallocation=full",
             os.path.join(ctx.store, name), str(size)])
    write_random_extents(os.path.join(ctx.store, RAW_SPARSE), 1 * GiB, 256 * MiB, SEED)
    raw = os.path.join(ctx.work, "full512m.tmp.raw")
    write_random(raw, 512 * MiB, SEED + 1)
    run([QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", raw, os.path.join(ctx.store, QCOW_FULL)])
    os.unlink(raw)
    # The same image with a .sha256 sidecar (a hard link: same data), for the checksum-verify variant.
    ctx.store_sum = os.path.join(ctx.work, "store-sha256")
    os.makedirs(ctx.store_sum)
    os.link(os.path.join(ctx.store, RAW_SPARSE), os.path.join(ctx.store_sum, RAW_SPARSE))
    out = run(["sha256sum", os.path.join(ctx.store, RAW_SPARSE)], stdout=subprocess.PIPE).stdout.decode()
    with open(os.path.join(ctx.store_sum, RAW_SPARSE + ".sha256"), "w") as f:
        f.write(out.split()[0] + "  " + RAW_SPARSE + "\n")
    for name in os.listdir(ctx.store):
        page_cache_evict(os.path.join(ctx.store, name))  # flushed, and out of the page cache
