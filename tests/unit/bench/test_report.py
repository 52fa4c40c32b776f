"""What docs/PERFORMANCE.md shows for the measurements (bench/report.py): cells, verdicts, the document's order,
and a run of some parts merged into the existing document without losing the others."""

import argparse

from . import load

report = load("report")
common = load("common")


def test_a_cell_is_median_with_the_10th_to_90th_percentile_and_n():
    assert report.summary([1.0, 2.0, 3.0, 4.0, 5.0], "s") == "3.00 s (1.40 s-4.60 s, n=5)"
    assert report.summary([0.0123], "s") == "12.3 ms (n=1)"
    assert report.summary([], "s") == "-"
    assert report.summary([512 * 2 ** 20], "B/s") == "512 MiB/s (n=1)"


def test_times_are_shown_in_the_unit_that_suits_them():
    assert [report.fmt_time(t) for t in (19.144, 0.25, 0.0288)] == ["19.14 s", "250 ms", "28.8 ms"]


def test_the_verdict_compares_the_ratio_of_medians_with_the_target():
    fast = report.Row("1", "hook", [1.0, 1.2, 1.1], "baseline", [1.0, 1.0, 1.0], target=("<=", 1.5))
    slow = report.Row("1", "hook", [2.0], "baseline", [1.0], target=("<=", 1.5))
    rate = report.Row("2", "fill", [80.0], "cp", [100.0], unit="B/s", target=(">=", 0.9))
    info = report.Row("2", "fill", [80.0], "cp", [100.0], unit="B/s")
    assert (fast.verdict(), slow.verdict(), rate.verdict(), info.verdict()) == ("PASS", "MISS", "MISS", "info")
    assert fast.cells()[5:] == ["1.10x", "&le; 1.50x", "**PASS**"]
    assert rate.cells()[5:] == ["0.80x", "&ge; 0.90x", "**MISS**"]


def test_a_part_that_could_not_run_says_why():
    row = report.Row("4", "end to end", note="not measured: the sandbox did not start")
    assert row.cells()[2] == "not measured: the sandbox did not start"
    assert row.cells()[-1] == "**not measured**"


def test_few_slow_runs_are_each_shown():
    row = report.Row("6", "killed -> PENDING", [36.3, 36.4, 36.29], show_runs=True)
    assert row.cells()[2] == "36.30 s median; runs: 36.30 s, 36.40 s, 36.29 s"


def test_a_pipe_in_a_cell_does_not_break_the_table():
    row = report.Row("1", "`a | b`", [1.0])
    assert row.markdown().count(" | ") == 7 and "`a \\| b`" in row.markdown()


def _ctx(rows, notes, only=None):
    ctx = common.Context(argparse.Namespace(only=only, quick=False, argv=[], workdir="/var/tmp"), "python3")
    ctx.rows = rows
    for part, text in notes:
        ctx.note(part, text)
    return ctx


def _doc(ctx):
    import datetime

    started = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
    return report.document(ctx, {"1": "1. Prepare", "4": "4. Launch"}, ["- CPU: x"], started, 60)


def test_the_document_lists_rows_then_each_part_how_it_was_measured_in_part_order():
    ctx = _ctx([report.Row("1", "warm prepare", [0.1]), report.Row("4", "POST -> RUNNING", [2.5])],
               [("4", "how 4."), ("1", "how 1."), ("1", "more on 1.")])
    lines = _doc(ctx).split("\n")
    assert lines[lines.index("## Results") + 4].startswith("| 1 | warm prepare | 100 ms (n=1) |")
    how = lines[lines.index("## How each part was measured") + 2:]
    assert how[:3] == ["- **1. Prepare**: how 1.", "  - more on 1.", "- **4. Launch**: how 4."]


def test_a_run_of_one_part_replaces_only_that_part(tmp_path):
    output = str(tmp_path / "PERFORMANCE.md")
    full = _ctx([report.Row("1", "warm prepare", [0.1]), report.Row("4", "POST -> RUNNING", [9.0])],
                [("1", "how 1."), ("4", "how 4, old.")])
    report.write(_doc(full), output)
    only4 = _ctx([report.Row("4", "POST -> RUNNING", [2.5])], [("4", "how 4, new.")])
    assert report.write(_doc(only4), output, {"4"}) == output
    text = open(output).read()
    assert "| 1 | warm prepare | 100 ms (n=1) |" in text and "how 1." in text
    assert "| 4 | POST -> RUNNING | 2.50 s (n=1) |" in text and "9.00 s" not in text
    assert "how 4, new." in text and "how 4, old." not in text


def test_a_document_that_cannot_be_merged_is_kept_and_the_run_goes_next_to_it(tmp_path):
    output = tmp_path / "PERFORMANCE.md"
    output.write_text("# hand-written, no sections\n")
    only4 = _ctx([report.Row("4", "POST -> RUNNING", [2.5])], [("4", "how 4.")])
    written = report.write(_doc(only4), str(output), {"4"})
    assert written == str(output) + ".new"
    assert output.read_text() == "# hand-written, no sections\n"
    assert "| 4 | POST -> RUNNING |" in open(written).read()


def test_a_limit_bounds_the_median_itself_in_its_unit():
    fast = report.Row("4", "POST -> RUNNING", [2.0, 2.5, 9.0], limit=("<=", 3.0))
    slow = report.Row("4", "POST -> RUNNING", [3.5, 2.5, 9.0], limit=("<=", 3.0))
    assert fast.cells()[6:] == ["&le; 3.00 s", "**PASS**"]
    assert slow.cells()[6:] == ["&le; 3.00 s", "**MISS**"]
    assert report.Row("4", "POST -> RUNNING", None, limit=("<=", 3.0), note="not measured: x").verdict() == \
        "not measured"
