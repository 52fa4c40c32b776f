"""Part 1: the prepare hook with a warm cache, against qemu-img + a bare interpreter; and where its time goes."""

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time

from ..common import QEMU_IMG, REPO, log, timed_cmd
from ..hooks import HOOK, HookEnv
from ..report import Row, fmt_bytes, fmt_time
from ..store import P1_BIG, P1_SMALL

NUMBER, NAME, TITLE, POOL = "1", "prepare", "1. Prepare hook, warm cache", False
PROFILER = os.path.join(REPO, "bench", "profile_prepare.py")
HOOK_MODULE = "condor_cloud.node.as_condor_cloud.prepare_hook"


def run(ctx):
    n = 8 if ctx.args.quick else 50
    env = HookEnv(ctx.work, "p1", ctx.store, ctx.python)
    log("part 1: warming the cache and bytecode caches")
    for image in (P1_SMALL, P1_BIG, P1_SMALL, P1_BIG):
        env.run(image)
    env.clear_instances()
    entry = {e.image: e for e in env.entries()}
    base = entry[P1_SMALL].path
    overlay = os.path.join(env.dir, "bare-overlay.qcow2")
    py_env = dict(env.env)
    samples = {k: [] for k in ("small", "big", "qemu", "pass", "import", "htcondor2")}
    written = []

    def hook(image, key):
        res = env.run(image)
        samples[key].append(res.wall)
        written.append(res.written)
        shutil.rmtree(res.attrs["CloudInstanceDir"])

    def qemu():
        samples["qemu"].append(timed_cmd([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base,
                                          overlay]))
        os.unlink(overlay)

    tasks = {
        "small": lambda: hook(P1_SMALL, "small"),
        "big": lambda: hook(P1_BIG, "big"),
        "qemu": qemu,
        "pass": lambda: samples["pass"].append(timed_cmd([ctx.python, "-c", "pass"], env=py_env)),
        "import": lambda: samples["import"].append(
            timed_cmd([ctx.python, "-c", "import " + HOOK_MODULE], env=py_env)),
        "htcondor2": lambda: samples["htcondor2"].append(
            timed_cmd([ctx.python, "-c", "import %s, htcondor2, classad2" % HOOK_MODULE], env=py_env)),
    }
    log("part 1: %d interleaved rounds" % n)
    for _ in range(n):
        for key in ctx.shuffled(tasks):
            tasks[key]()
    bare = [q + p for q, p in zip(samples["qemu"], samples["pass"])]
    bare_imp = [q + p for q, p in zip(samples["qemu"], samples["import"])]
    bare_htc = [q + p for q, p in zip(samples["qemu"], samples["htcondor2"])]
    ctx.rows += [
        Row("1", "warm prepare, 16 MiB qcow2", samples["small"], "qemu-img create -b + `python -c pass`", bare,
            target=("<=", 1.5)),
        Row("1", "warm prepare, 1 GiB qcow2", samples["big"], "qemu-img create -b + `python -c pass`", bare,
            target=("<=", 1.5)),
        Row("1", "warm prepare, 1 GiB vs 16 MiB image", samples["big"], "warm prepare, 16 MiB", samples["small"],
            target=("<=", 1.10)),
        Row("1", "warm prepare, 16 MiB qcow2", samples["small"],
            "qemu-img create -b + `python -c 'import %s'`" % HOOK_MODULE, bare_imp),
        Row("1", "warm prepare, 16 MiB qcow2", samples["small"],
            "qemu-img create -b + `python -c 'import %s, htcondor2, classad2'`" % HOOK_MODULE, bare_htc),
        Row("1", "(component) qemu-img create -b", samples["qemu"]),
        Row("1", "(component) `python -c pass`", samples["pass"]),
        Row("1", "(component) `python -c 'import %s'`" % HOOK_MODULE, samples["import"]),
        Row("1", "(component) `python -c 'import %s, htcondor2, classad2'`" % HOOK_MODULE, samples["htcondor2"]),
    ]
    ctx.note("1", "Each round runs, in shuffled order: the real `hooks/prepare` (interpreter %s, job ad on stdin, "
             "CONDOR_CONFIG = a temporary config with the CLOUD_* directories, the bench as the starter) for "
             "the 16 MiB and the 1 GiB image (both qcow2, preallocation=full, already cached), a bare "
             "`qemu-img create -q -f qcow2 -F qcow2 -b <cached 16 MiB entry>` and three bare interpreter "
             "starts. The target's baseline is the strictest one: qemu-img + `python -c pass` (sum per round). "
             "The hook wrote a median of %s per run (getrusage ru_oublock)."
             % (ctx.python, fmt_bytes(statistics.median(written))))
    ctx.profile = profile(ctx, env)


# The profiler's phases in the order shown (names as bench/profile_prepare.py gives them).
PHASES = ["import " + HOOK_MODULE, "import htcondor2 + classad2", "prepare_hook.main (total)",
          "config.load_settings (htcondor2.param)", "jobad.read_ad (classad2 parse)",
          "instance_dirs.create (mkdir, instance.json)", "images.open_store_image", "Prepare._make_room (statvfs)",
          "fcntl.flock", "ImageCache.lookup", "ImageCache._touch (utime)", "Instance.save (instance.json write+fsync)",
          "os.fsync", "qemuimg.create_overlay (qemu-img create)", "seed.inputs_from_ad",
          "seed.build_seed (cloud-init ISO)", "jobad.format_attrs"]


def profile(ctx, env):
    """The "where the warm prepare's time goes" lines: bench/profile_prepare.py's phases, then -X importtime."""
    runs = 5 if ctx.args.quick else 15
    log("part 1: profiling the warm prepare hook (%d runs)" % runs)
    per_phase, outer = {}, []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([ctx.python, PROFILER], input=env.ad(P1_SMALL), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env.env, cwd=env.dir, check=False)
        wall = time.perf_counter() - t0
        data = json.loads(proc.stdout)
        if data["rc"] != 0:
            raise RuntimeError("profiled hook failed: %s" % data["output"])
        outer.append(wall)
        for name, t in data["times"].items():
            per_phase.setdefault(name, []).append((t["seconds"], t["calls"]))
        inst = [line for line in data["output"].splitlines() if line.startswith("CloudInstanceDir")]
        shutil.rmtree(inst[0].split(" = ")[1].strip('"'))
    total_in = [s for s, _ in per_phase["in-process total (after interpreter start-up)"]]
    startup = [w - i for w, i in zip(outer, total_in)]
    lines = ["Median over %d instrumented runs of the warm prepare (16 MiB image; bench/profile_prepare.py wraps "
             "the hook's functions, condor_cloud/ unchanged). Times are inclusive (a phase contains the phases it "
             "calls); the two imports are forced before main() to separate them from load_settings/read_ad, "
             "which import them lazily." % runs, "",
             "| phase | median | calls per run | share of the hook's wall |", "| --- | --- | --- | --- |"]
    med_wall = statistics.median(outer)
    lines.append("| whole hook (outside wall, incl. profiler overhead) | %s | 1 | 100%% |" % fmt_time(med_wall))
    lines.append("| interpreter start-up + exit (wall - in-process) | %s | 1 | %.0f%% |"
                 % (fmt_time(statistics.median(startup)), 100 * statistics.median(startup) / med_wall))
    for name in PHASES:
        if name not in per_phase:
            continue
        secs = statistics.median(s for s, _ in per_phase[name])
        calls = statistics.median(c for _, c in per_phase[name])
        indent = "" if name.startswith(("import", "prepare_hook.main")) else "&nbsp;&nbsp;&nbsp;&nbsp;"
        lines.append("| %s%s | %s | %g | %.0f%% |" % (indent, name, fmt_time(secs), calls, 100 * secs / med_wall))
    # Import profile of the real hook (-X importtime): the biggest top-level imports.
    proc = subprocess.run([ctx.python, "-X", "importtime", HOOK], input=env.ad(P1_SMALL), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env.env, cwd=env.dir, check=False)
    imports = []
    for line in proc.stderr.decode().splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, cumulative, name = [p.strip() for p in line.replace("import time:", "|").split("|", 3)]
        depth = (len(line.split("|")[2]) - len(line.split("|")[2].lstrip())) // 2
        if depth <= 1:
            imports.append((int(cumulative), name))
    with contextlib.suppress(Exception):
        for line in proc.stdout.decode().splitlines():
            if line.startswith("CloudInstanceDir"):
                shutil.rmtree(line.split(" = ")[1].strip('"'))
    imports.sort(reverse=True)
    lines += ["", "Largest top-level imports of one real hook run (`python -X importtime hooks/prepare`, "
              "cumulative, one run): " + ", ".join("%s %.1f ms" % (name, us / 1e3) for us, name in imports[:8]) + "."]
    return lines
