"""Run the prepare hook's main() once with timers around its phases; print the timings as JSON on stdout.

Run by bench/run with the hook's interpreter, CONDOR_CONFIG and PYTHONPATH set as for hooks/prepare, and the job
ad on standard input. Only wraps functions (no change to condor_cloud/). Times are inclusive: a phase includes the
phases it calls (instance_dirs.create includes one Instance.save, which includes one os.fsync).
"""

import time

_T0 = time.perf_counter()

import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

TIMES = {}


def _add(name, dt):
    total, count = TIMES.get(name, (0.0, 0))
    TIMES[name] = (total + dt, count + 1)


def wrap(owner, attr, name):
    original = getattr(owner, attr)

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - t0)

    setattr(owner, attr, timed)


def main():
    t0 = time.perf_counter()
    import condor_cloud.node.as_condor_cloud.prepare_hook as ph
    _add("import condor_cloud.node.as_condor_cloud.prepare_hook", time.perf_counter() - t0)
    t0 = time.perf_counter()
    importlib.import_module("htcondor2")  # the hook imports these lazily inside load_settings / read_ad
    importlib.import_module("classad2")
    _add("import htcondor2 + classad2", time.perf_counter() - t0)

    import fcntl

    from condor_cloud.node import cache, instance_dirs, jobad
    from condor_cloud.core import config, images, qemuimg

    wrap(config, "load_settings", "config.load_settings (htcondor2.param)")
    wrap(jobad, "read_ad", "jobad.read_ad (classad2 parse)")
    wrap(instance_dirs, "create", "instance_dirs.create (mkdir, instance.json)")
    wrap(instance_dirs.Instance, "save", "Instance.save (instance.json write+fsync)")
    wrap(os, "fsync", "os.fsync")
    wrap(images, "open_store_image", "images.open_store_image")
    wrap(ph.Prepare, "_make_room", "Prepare._make_room (statvfs)")
    wrap(cache.ImageCache, "lookup", "ImageCache.lookup")
    wrap(cache.ImageCache, "_touch", "ImageCache._touch (utime)")
    wrap(fcntl, "flock", "fcntl.flock")
    wrap(qemuimg, "create_overlay", "qemuimg.create_overlay (qemu-img create)")
    wrap(jobad, "format_attrs", "jobad.format_attrs")
    try:
        from condor_cloud.node import seed
    except ImportError:
        seed = None
    if seed is not None and hasattr(ph, "seed"):
        for attr, name in (("inputs_from_ad", "seed.inputs_from_ad"), ("build_seed", "seed.build_seed (cloud-init ISO)")):
            if hasattr(seed, attr):
                wrap(seed, attr, name)

    out = io.StringIO()
    t0 = time.perf_counter()
    rc = ph.main(argv=[], stdin=sys.stdin, stdout=out)
    _add("prepare_hook.main (total)", time.perf_counter() - t0)
    _add("in-process total (after interpreter start-up)", time.perf_counter() - _T0)
    json.dump({"rc": rc, "output": out.getvalue(),
               "times": {k: {"seconds": v[0], "calls": v[1]} for k, v in TIMES.items()}}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
