"""Part 4's rows in docs/PERFORMANCE.md carry issue 13's targets, and a phase no run reached says so."""

import argparse

from . import load

part4 = load("parts.part4_launch")
common = load("common")


def _run(via, **over):
    run = {"running": 0.5, "hook_start": 1.2, "hook_end": 1.21, "domain": 6.7, "first_line": 10.8, "marker": 10.8,
           "starter_done": 41.7, "console_api": 43.0 if via == "api" else None, "guest_ip": 20.0, "address": 120.0,
           "delete": 23.0, "cluster": 7, "missing": [], "first_text": "BOOTED", "address_value": "192.168.122.5",
           "consoles": [(503, 4.0), (200, 0.3)] if via == "api" else []}
    run.update(over)
    return run


def _rows(runs):
    ctx = common.Context(argparse.Namespace(only=["4"], quick=False, argv=[], workdir="/var/tmp"), "python3")
    part4.report(ctx, runs, [], [("NEGOTIATOR_INTERVAL", "2", "20", "20")], 5)
    return {row.what: row.cells() for row in ctx.rows}


def test_each_target_of_issue_13_is_on_its_row():
    rows = _rows({("warm", "api"): [_run("api")], ("cold", "hand"): [_run("hand", first_line=11.5)]})
    assert rows["API, warm: POST -> RUNNING (API state)"][6:] == ["&le; 3.00 s", "**PASS**"]
    assert rows["API, warm: POST -> guest's first console line (node's console log)"][6:] == \
        ["&le; 10.00 s", "**MISS**"]
    assert rows["by hand, cold: condor_submit -> guest's first console line (node's console log)"][6:] == \
        ["&le; 11.00 s", "**MISS**"]
    assert rows["API, warm: first console line readable through the API, after the starter's StartJob "
                "returns"][2:3] + rows["API, warm: first console line readable through the API, after the "
                                       "starter's StartJob returns"][6:] == ["1.30 s (n=1)", "&le; 2.00 s", "**PASS**"]
    assert rows["API, warm: DELETE -> domain gone (virsh list), sent after the starter's StartJob returned"][6:] == \
        ["&le; 3.00 s", "**MISS**"]


def test_a_measurement_no_run_reached_is_not_measured():
    rows = _rows({("warm", "api"): [_run("api", console_api=None)]})
    row = rows["API, warm: first console line readable through the API, after the starter's StartJob returns"]
    assert row[2].startswith("not measured") and row[-1] == "**not measured**"
    assert rows["API, cold: POST -> RUNNING (API state)"][-1] == "**not measured**"
