"""`bench/run --only PART` updates only that part's rows and entries in docs/PERFORMANCE.md (bench/docmerge.py);
every other line of the document stays as it was. Also bench/run's --only parsing (bad part -> usage error)."""

import pytest

from . import load

docmerge = load("docmerge")

HEAD = ["# Condor Cloud performance", "", "Generated on 2026-11-21.", "", "## Machine", "", "- CPU: x", "",
        "## Results", "", "| part | measurement | value |", "| --- | --- | --- |"]


def doc(rows, entries, tail=("", "## Where the warm prepare's time goes", "", "profile line", "")):
    return "\n".join(HEAD + ["| %s | %s | %s |" % r for r in rows] + ["", "## How each part was measured", ""]
                     + entries + list(tail))


OLD = doc([("1", "warm prepare", "120 ms"), ("1", "component", "8 ms"), ("4", "end to end", "19 s"),
           ("5", "listing", "27 ms")],
          ["- **1. Prepare**: how 1.", "  - more on 1.", "- **4. End to end**: how 4.", "- **5. API listing**: how 5."])
NEW6 = doc([("6", "starter killed -> PENDING", "37 s"), ("6", "DELETE, startd off -> gone", "21 s")],
           ["- **6. Failures**: how 6.", "  - run 1."], tail=("",))


def test_adds_a_new_part_and_keeps_every_other_line():
    merged = docmerge.merge(OLD, NEW6, {"6"})
    lines = merged.split("\n")
    assert [line for line in lines if "starter killed" not in line and "DELETE" not in line
            and "how 6" not in line and "run 1." not in line] == OLD.split("\n")
    # part 6's rows after part 5's, its entry after part 5's
    assert lines.index("| 6 | starter killed -> PENDING | 37 s |") == lines.index("| 5 | listing | 27 ms |") + 1
    assert lines.index("- **6. Failures**: how 6.") == lines.index("- **5. API listing**: how 5.") + 1
    assert lines.index("  - run 1.") == lines.index("- **6. Failures**: how 6.") + 1
    assert merged.endswith("profile line\n")


def test_replaces_the_part_without_duplicates():
    once = docmerge.merge(OLD, NEW6, {"6"})
    again = NEW6.replace("37 s", "40 s").replace("run 1.", "run 1 again.")
    twice = docmerge.merge(once, again, {"6"})
    assert "37 s" not in twice and "  - run 1." not in twice
    assert twice.count("| 6 |") == 2 and twice.count("- **6.") == 1
    assert twice.replace("40 s", "37 s").replace("run 1 again.", "run 1.") == once


def test_replaces_a_middle_part_in_place():
    new4 = doc([("4", "end to end", "25 s")], ["- **4. End to end**: how 4, rerun."], tail=("",))
    merged = docmerge.merge(OLD, new4, {"4"})
    assert merged == OLD.replace("| 19 s |", "| 25 s |").replace("how 4.", "how 4, rerun.")


def test_other_parts_of_the_new_document_are_ignored():
    merged = docmerge.merge(OLD, NEW6.replace("| 6 | DELETE", "| 1 | DELETE"), {"6"})
    assert "| 1 | DELETE" not in merged and "| 1 | warm prepare | 120 ms |" in merged


@pytest.mark.parametrize("broken", [OLD.replace("## Results", "## Resultz"),
                                    OLD.replace("## How each part was measured", "## How"),
                                    OLD.replace("| --- | --- | --- |\n", "")])
def test_a_document_without_the_sections_is_refused(broken):
    with pytest.raises(ValueError):
        docmerge.merge(broken, NEW6, {"6"})


def test_only_takes_numbers_and_names_and_refuses_others():
    run = load("runner")
    assert run.parse_parts("failures") == ["6"]
    assert run.parse_parts("1, e2e,6") == ["1", "4", "6"]
    for bad in ("7", "failure", ",", ""):
        with pytest.raises(Exception) as exc:
            run.parse_parts(bad)
        assert "part" in str(exc.value)
