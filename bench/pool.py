"""The real-pool sandbox for parts 4-6 (tests/sandbox: HTCondor + libvirt + QEMU in a throw-away root; its name is
$CLOUD_SANDBOX_NAME, default bench): started once for the pool parts of a run, always stopped."""

import contextlib
import os
import re
import sys
import time
import traceback

from .common import REPO, log
from .report import Row

SANDBOX_DIR = os.path.join(REPO, "tests", "sandbox")
# A by-hand VM job (docs/SUBMIT.txt's shape): image, extra submit lines, count.
SUBMIT = ("universe = vm\nvm_type = kvm\nexecutable = bench\nvm_memory = 128\nvm_disk = %s:vda:w\n"
          "vm_no_output_vm = true\n%squeue %d\n")
MARKER = "CONDOR-CLOUD-GUEST-BOOTED"   # the test images' first console line of their own (tests/images)


def sandbox_class():
    if SANDBOX_DIR not in sys.path:
        sys.path.insert(0, SANDBOX_DIR)
    from sandbox import Sandbox

    return Sandbox


def run_parts(ctx, parts):
    """Run the pool parts (modules with NUMBER, WHAT and run(ctx, sb)) in one sandbox; a part that cannot be
    measured gets a "not measured" row saying why, and the others still run."""
    if not parts:
        return
    why = None
    if not ctx.args.pool:
        why = "run `bench/run --pool` (`make bench BENCH_ARGS=--pool`; needs the real-pool sandbox)"
    elif not os.path.exists(SANDBOX_DIR):
        why = "tests/sandbox does not exist (the real-pool sandbox)"
    if why:
        for part in parts:
            ctx.rows.append(Row(part.NUMBER, part.WHAT, note="not measured: " + why))
        return
    name = os.environ.get("CLOUD_SANDBOX_NAME", "bench")
    log("parts %s: starting the real-pool sandbox %s" % ("-".join(p.NUMBER for p in parts), name))
    sb = sandbox_class()(name=name)
    try:
        try:
            sb.up()
        except Exception as exc:
            for part in parts:
                ctx.rows.append(Row(part.NUMBER, part.WHAT, note="not measured: the sandbox did not start: %s"
                                    % str(exc).splitlines()[0][:200]))
            return
        for part in parts:
            try:
                part.run(ctx, sb)
            except Exception as exc:
                traceback.print_exc()
                ctx.rows.append(Row(part.NUMBER, part.WHAT, note="not measured: %s: %s" % (type(exc).__name__,
                                                                                            str(exc)[:300])))
    finally:
        sb.stop()


# The sandbox's own settings (tests/sandbox) that decide how fast an instance starts, shows and goes; a part that
# measures what users get runs with the shipped values of these instead (shipped_knobs).
SANDBOX_FILE = "/etc/condor/config.d/99sandbox.config"
BENCH_FILE = "/etc/condor/config.d/99zz-bench.config"     # read after the sandbox's file
DAEMON = {"NEGOTIATOR": "negotiator", "SCHEDD": "schedd", "SHADOW": "schedd", "MASTER": "master"}  # else startd
TIMING = re.compile(r"^(NEGOTIATOR_\w+|SCHEDD_\w+|\w*UPDATE_INTERVAL|STARTER_\w+|SHADOW_\w+|CLAIM_\w+|"
                    r"VM_STATUS_INTERVAL)$")


def sandbox_overrides(sb):
    """{knob: value} of the timing knobs the sandbox sets in its own config file."""
    found = {}
    with open(sb.path(SANDBOX_FILE)) as f:
        for line in f:
            name, sep, value = line.partition("=")
            if sep and TIMING.match(name.strip()):
                found[name.strip()] = value.strip()
    return found


def shipped_value(sb, name):
    """What the installed config.d (the project's snippets over HTCondor's own defaults) makes of name without
    the sandbox's file and this bench's: HTCondor's condor_config_val in the sandbox, over a copy of its
    condor_config that skips those two files. None if nothing defines it."""
    copy = "/tmp/bench-shipped-condor_config"
    with open(sb.path("/etc/condor/condor_config")) as f:
        text = f.read()
    with open(sb.path(copy), "w") as f:
        f.write(text + "\nLOCAL_CONFIG_DIR_EXCLUDE_REGEXP = ^99(sandbox|zz-bench)\\.config$\n")
    p = sb.run(["env", "CONDOR_CONFIG=" + copy, "condor_config_val", name], check=False)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


def daemon_value(sb, daemon, name):
    """name as the running daemon has it (condor_config_val -<daemon>), after a reconfig."""
    p = sb.run(["condor_config_val", "-" + daemon, name], check=False)
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else "unset"


@contextlib.contextmanager
def shipped_knobs(sb, extra=""):
    """The pool with the shipped value of each timing knob the sandbox overrides (plus extra config lines), by
    a config file after the sandbox's and condor_reconfig; undone afterwards. Yields
    [(knob, sandbox value, shipped value, the value the daemon that uses it reports after the reconfig)]."""
    rows = []
    lines = ["# bench: the shipped values of the sandbox's timing knobs (bench/pool.py shipped_knobs)"]
    for name, value in sorted(sandbox_overrides(sb).items()):
        shipped = shipped_value(sb, name)
        # Not defined by any shipped file: an empty value undefines it again, so HTCondor's built-in default applies.
        rows.append([name, value, shipped if shipped is not None else "(unset: HTCondor's default)"])
        lines.append("%s = %s" % (name, shipped if shipped is not None else ""))
    with open(sb.path(BENCH_FILE), "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    try:
        sb.run(["condor_reconfig"])
        time.sleep(3)   # the daemons reread their configuration
        for row in rows:
            row.append(daemon_value(sb, DAEMON.get(row[0].split("_")[0], "startd"), row[0]))
        log("pool: shipped knobs: %s" % "; ".join("%s %s -> %s (daemon: %s)" % tuple(r) for r in rows))
        yield [tuple(r) for r in rows]
    finally:
        os.unlink(sb.path(BENCH_FILE))
        sb.run(["condor_reconfig"], check=False)
        time.sleep(3)
