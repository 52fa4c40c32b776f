"""The document: statistics, table cells, and docs/PERFORMANCE.md itself (a run of some parts only is merged
into the existing document by docmerge.py)."""

import contextlib
import math
import os
import platform
import statistics
import subprocess

from . import docmerge
from .common import GiB, MiB, QEMU_IMG, REPO, log, run
from .files import fs_info


def pct(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def fmt_time(sec):
    if sec >= 1:
        return "%.2f s" % sec
    if sec >= 0.1:
        return "%.0f ms" % (sec * 1e3)
    return "%.1f ms" % (sec * 1e3)


def fmt_rate(bps):
    return "%.0f MiB/s" % (bps / MiB)


def fmt_bytes(b):
    return "%.1f MiB" % (b / MiB)


FORMATTERS = {"s": fmt_time, "B/s": fmt_rate, "B": fmt_bytes, "x": lambda v: "%.2fx" % v}


def summary(xs, unit):
    if not xs:
        return "-"
    f = FORMATTERS[unit]
    if len(xs) == 1:
        return "%s (n=1)" % f(xs[0])
    return "%s (%s-%s, n=%d)" % (f(statistics.median(xs)), f(pct(xs, 10)), f(pct(xs, 90)), len(xs))


class Row:
    """One line of the results table: a value, its baseline from the same run, the ratio and the target: target
    bounds the ratio (("<=", 1.5)), limit the median value itself, in its unit (("<=", 3.0): at most 3 s)."""

    def __init__(self, part, what, value=None, base_name="", base=None, unit="s", target=None, ratio=None,
                 note="", result=None, show_runs=False, limit=None):
        self.result, self.show_runs, self.limit = result, show_runs, limit
        self.part, self.what, self.value, self.base_name, self.base = part, what, value, base_name, base
        self.unit, self.target, self.note = unit, target, note
        if ratio is None and value and base:
            ratio = statistics.median(value) / statistics.median(base)
        self.ratio = ratio

    def verdict(self):
        if self.result:
            return self.result
        if self.limit and self.value:
            op, limit = self.limit
            got = statistics.median(self.value)
            return "PASS" if (got <= limit if op == "<=" else got >= limit) else "MISS"
        if self.ratio is None:
            return "not measured" if self.value is None else "-"
        if not self.target:
            return "info"
        op, limit = self.target
        ok = self.ratio <= limit if op == "<=" else self.ratio >= limit
        return "PASS" if ok else "MISS"

    def cells(self):
        target = "%s %.2fx" % ("&le;" if self.target[0] == "<=" else "&ge;", self.target[1]) if self.target else "-"
        if self.limit:
            target = "%s %s" % ("&le;" if self.limit[0] == "<=" else "&ge;", FORMATTERS[self.unit](self.limit[1]))
        ratio = "%.2fx" % self.ratio if self.ratio is not None else "-"
        value = summary(self.value, self.unit) if self.value else (self.note if self.value is None else "-")
        if self.value and self.show_runs:  # few, slow runs: each one, not a spread
            value = "%s median; runs: %s" % (FORMATTERS[self.unit](statistics.median(self.value)),
                                             ", ".join(FORMATTERS[self.unit](v) for v in self.value))
        return [self.part, self.what, value, self.base_name or "-",
                summary(self.base, self.unit) if self.base else "-", ratio, target, "**%s**" % self.verdict()]

    def markdown(self):
        return "| " + " | ".join(c.replace("|", "\\|") for c in self.cells()) + " |"


def commit():
    return subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL).stdout.decode().strip()


def machine(ctx):
    """The "## Machine" lines: CPU, memory, kernel, filesystem, versions, load, commit."""
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) * 1024 / GiB)
    qemu = run([QEMU_IMG, "--version"], stdout=subprocess.PIPE).stdout.decode().splitlines()[0]
    htc = subprocess.run([ctx.python, "-c", "import htcondor2; print(htcondor2.version())"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode().strip()
    pyv = subprocess.run([ctx.python, "-c", "import sys; print(sys.version.split()[0])"],
                         stdout=subprocess.PIPE).stdout.decode().strip()
    return [
        "- CPU: %s; %d cores online, %d usable by this process; memory %s" % (
            cpu, os.cpu_count(), len(os.sched_getaffinity(0)), mem),
        "- kernel: %s %s; filesystem of the work dir %s: %s" % (platform.system(), platform.release(),
                                                                ctx.args.workdir, fs_info(ctx.args.workdir)),
        "- %s; Python %s (%s); %s" % (qemu, pyv, ctx.python, htc or "htcondor2 ?"),
        "- load average (1 min) at start / end: %.2f / %.2f (the machine is shared: hence ratios)" % (
            ctx.load0, os.getloadavg()[0]),
        "- commit: %s%s" % (commit(), "; **--quick run (few rounds)**" if ctx.args.quick else ""),
    ]


def document(ctx, titles, machine_lines, started, elapsed):
    """The whole document's text. titles: {part: "N. title"} in part order; a run of some parts (--only) adds to
    each of them how and when it was measured alone."""
    lines = ["# Condor Cloud performance", "",
             "Generated by `make bench` (`bench/run`, issue 7) on %s UTC in %.0f s. Do not edit by hand: rerun "
             "`make bench`." % (started.strftime("%Y-%m-%d %H:%M"), elapsed), "",
             "Every figure is next to a baseline measured in the same run, interleaved with it (shuffled order "
             "each round), because the machine is shared and noisy: compare ratios, not absolute times. "
             "Cells show median (p10-p90, n). Ratio = median / baseline median (for throughput: higher is "
             "better). These are measurements, not tests.", "", "## Machine", ""]
    lines += machine_lines
    lines += ["", "## Results", "",
              "| part | measurement | value | baseline (same run) | baseline value | ratio | target | result |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [row.markdown() for row in ctx.rows]
    lines += ["", "## How each part was measured", ""]
    if ctx.args.only:
        for part in ctx.args.only:  # the document's header and Machine section are the full run's
            if part in ctx.notes:
                ctx.note(part, "Measured alone with `bench/run %s` on %s UTC in %.0f s, commit %s, load "
                         "average (1 min) %.2f at start, %.2f at end; the Machine section above is of the "
                         "full run." % (" ".join(ctx.args.argv), started.strftime("%Y-%m-%d %H:%M"),
                                        elapsed, commit(), ctx.load0, os.getloadavg()[0]))
                for err in ctx.errors:
                    ctx.note(part, "error in that run: " + err)
    for part, title in titles.items():
        for i, text in enumerate(ctx.notes.get(part, [])):
            lines += ["%s %s" % ("- **%s**:" % title if i == 0 else "  -", text)]
    if ctx.profile:
        lines += ["", "## Where the warm prepare's time goes", ""] + ctx.profile
    if ctx.errors:
        lines += ["", "## Errors", ""] + ["- %s" % e for e in ctx.errors]
    lines.append("")
    return "\n".join(lines)


def write(text, output, parts=None):
    """Write the document to output (atomically). parts: this run's parts only (--only): merged into an existing
    output; if that cannot be done, written to output + ".new" so neither the others' figures nor these are lost.
    Returns the path written."""
    if parts and os.path.exists(output):
        with open(output) as f:
            old = f.read()
        try:
            text = docmerge.merge(old, text, parts)
        except ValueError as exc:
            log("cannot update %s (%s): writing this run's parts to %s" % (output, exc, output + ".new"))
            output += ".new"
    with open(output + ".tmp", "w") as f:
        f.write(text)
    os.rename(output + ".tmp", output)
    return output
