"""What every part shares: the run's Context, progress output and timed commands."""

import os
import random
import shutil
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
QEMU_IMG = shutil.which("qemu-img") or "/usr/bin/qemu-img"
SEED = 7


def log(msg):
    print("bench: %s" % msg, flush=True)


def run(argv, **kw):
    kw.setdefault("check", True)
    return subprocess.run(argv, **kw)


def timed_cmd(argv, env=None, cwd=None):
    """Run argv (no shell), return wall seconds; raise on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), proc.returncode,
                                                   proc.stderr.decode("utf-8", "replace")[-500:]))
    return dt


class Context:
    """One run of the suite, as the parts see it: the arguments, the hooks' interpreter, the work directory and
    the image store (parts 1-3), and what the document will say (rows, notes per part, the prepare profile)."""

    def __init__(self, args, python):
        self.args = args
        self.python = python
        self.rows = []
        self.notes = {}       # part -> [markdown lines]
        self.profile = []     # markdown lines
        self.errors = []
        self.rng = random.Random(SEED)
        self.work = None
        self.store = self.store_sum = None
        self.load0 = os.getloadavg()[0]

    def note(self, part, text):
        self.notes.setdefault(part, []).append(text)

    def shuffled(self, items):
        items = list(items)
        self.rng.shuffle(items)
        return items
