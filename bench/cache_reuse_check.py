"""Cost of the cache entry check on reuse (issue 17 item 5): ImageCache.damage() and a whole reuse (lock, lookup,
check, touch), for entries of growing size. The check stats the entry, reads its fill record and 8 KiB of it:
its cost must not grow with the entry.

  .venv/bin/python bench/cache_reuse_check.py [DIR]     (DIR: where to make the store and cache; default a temp dir
                                                         under /var/tmp, on a real disk rather than tmpfs)
Needs qemu-img (every fill probes the image). Prints one line per size; no assertion.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from condor_cloud.core import images  # noqa: E402
from condor_cloud.node.cache import ImageCache  # noqa: E402

N = 5000


def per_call(fn, n=N):
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main(argv):
    with tempfile.TemporaryDirectory(dir=argv[1] if len(argv) > 1 else "/var/tmp") as root:
        store, cache_dir = os.path.join(root, "store"), os.path.join(root, "cache")
        os.mkdir(store)
        os.mkdir(cache_dir)
        cache = ImageCache(cache_dir)
        print("%10s %14s %14s" % ("entry", "check (us)", "reuse (us)"))
        for size in (1 << 20, 64 << 20, 1 << 30, 16 << 30):
            name = "disk-%d.img" % size
            with open(os.path.join(store, name), "wb") as f:
                f.truncate(size)                       # sparse: the fill copies only the data
                f.write(os.urandom(1 << 20))
            with images.open_store_image(store, name) as image:
                with cache.acquire(image) as entry:
                    pass

                def reuse():
                    with cache.acquire(image):
                        pass

                check = per_call(lambda: cache.damage(entry, size))
                whole = per_call(reuse, N // 5)
            print("%8d M %14.1f %14.1f" % (size >> 20, check, whole))


if __name__ == "__main__":
    main(sys.argv)
