"""bench/run - Condor Cloud benchmark suite (issue 7); `make bench` runs it and it writes docs/PERFORMANCE.md.

Every figure is measured next to a baseline in the same run, interleaved (shuffled order in each round), and
reported as medians with spreads and the ratio of medians: the machines are shared and noisy, so only ratios
measured side by side mean anything. These are measurements, not tests: nothing here fails on a missed target.

arguments:        [--pool] also run parts 4-6 (need tests/sandbox: the real-pool sandbox; its name:
                  $CLOUD_SANDBOX_NAME, default bench)
                  [--only PART,...] run only these parts (numbers 1-6 or names: prepare fill storm e2e listing
                  failures; 4-6 imply --pool) and replace only their rows and entries in an existing --output,
                  keeping the rest of it as it is (bench/docmerge.py)
                  [--quick] few rounds, for trying the script out (the document says so)
                  [--output PATH] default docs/PERFORMANCE.md; [--workdir DIR] default /var/tmp
standard input:   not read
standard output:  progress; the document goes to --output
user:             root (loop-mounts an XFS image for the reflink part; skipped with a note when that fails)
exit status:      0 document written; 1 a part failed with an error (the document is still written and says so)
needs:            an interpreter with htcondor2 (the one this runs with, else .venv/bin/python), qemu-img, cp,
                  fincore; mkfs.xfs + losetup + mount for the reflink part
"""

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from . import pool, report
from .common import REPO, Context, log
from .hooks import kill_children
from .parts import BY_NUMBER, NAMES, PARTS
from .store import make_images

ALL_PARTS = tuple(p.NUMBER for p in PARTS)


def parse_parts(text):
    """'failures' or '4,6' -> the part numbers; argparse turns the ArgumentTypeError into a usage error."""
    parts = []
    for word in filter(None, (w.strip() for w in text.split(","))):
        part = NAMES.get(word, word)
        if part not in BY_NUMBER:
            raise argparse.ArgumentTypeError("unknown part %r (use 1-%s or %s)" % (word, ALL_PARTS[-1],
                                                                                  ", ".join(NAMES)))
        parts.append(part)
    if not parts:
        raise argparse.ArgumentTypeError("no part given")
    return parts


def hook_python(explicit):
    candidates = [explicit] if explicit else [sys.executable, os.path.join(REPO, ".venv", "bin", "python")]
    for py in candidates:
        if py and os.path.exists(py) and subprocess.run([py, "-c", "import htcondor2, classad2"],
                                                        stderr=subprocess.DEVNULL).returncode == 0:
            return os.path.abspath(py) if os.sep in py else py
    sys.exit("bench: no interpreter with htcondor2 (tried %s); run `make bench` (it builds .venv)" % candidates)


def cleanup(work):
    if not work or not os.path.isdir(work):
        return
    with open("/proc/self/mounts") as f:
        live = [line.split()[1] for line in f if line.split()[1].startswith(work + "/")]
    if live:  # never delete through a mount
        log("WARNING: still mounted, not deleting %s: %s" % (work, live))
        return
    shutil.rmtree(work, ignore_errors=True)


def run_all(ctx):
    """Run the selected parts (the local ones one step at a time, then the pool ones in one sandbox); a step's
    error is recorded and the next one runs. Returns the exit status."""
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    selected = [p for p in PARTS if p.NUMBER in (ctx.args.only or ALL_PARTS)]
    local = [p for p in selected if not p.POOL]
    ctx.work = tempfile.mkdtemp(prefix="condor-cloud-bench.", dir=ctx.args.workdir)
    try:
        if local:
            make_images(ctx)
        steps = [(step, p) for p in local for step in getattr(p, "STEPS", (p.run,))]
        steps.append((lambda c: pool.run_parts(c, [p for p in selected if p.POOL]), None))
        for step, part in steps:
            try:
                step(ctx)
            except Exception as exc:
                traceback.print_exc()
                name = "%s.%s" % (part.__name__.rsplit(".", 1)[-1], step.__name__) if part else "pool parts"
                ctx.errors.append("%s: %s: %s" % (name, type(exc).__name__, exc))
            finally:
                kill_children()
    finally:
        kill_children()
        cleanup(ctx.work)
    elapsed = time.perf_counter() - t0
    titles = {p.NUMBER: p.TITLE for p in PARTS}
    text = report.document(ctx, titles, report.machine(ctx), started, elapsed)
    report.write(text, ctx.args.output, set(ctx.args.only or ()))
    log("wrote %s (%.0f s)" % (ctx.args.output, time.perf_counter() - t0))
    for row in ctx.rows:
        if row.verdict() in ("PASS", "MISS"):
            log("%s %-4s %s  %s vs %s" % (row.part, row.verdict(), "%5.2fx" % row.ratio if row.ratio else "  -  ",
                                          row.what, row.base_name or row.note))
    return 1 if ctx.errors else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", action="store_true", help="also parts 4-6 (real-pool sandbox)")
    parser.add_argument("--only", type=parse_parts, metavar="PART,...",
                        help="only these parts (1-6 or %s; 4-6 imply --pool); replaces only their rows and entries "
                             "in an existing --output" % " ".join(NAMES))
    parser.add_argument("--quick", action="store_true", help="few rounds (trying the script out)")
    parser.add_argument("--output", default=os.path.join(REPO, "docs", "PERFORMANCE.md"))
    parser.add_argument("--workdir", default="/var/tmp")
    parser.add_argument("--python", help="interpreter for the hooks (default: this one, else .venv/bin/python)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.only and any(BY_NUMBER[p].POOL for p in args.only):
        args.pool = True

    def on_term(signum, frame):
        raise SystemExit("bench: terminated by signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    return run_all(Context(args, hook_python(args.python)))
