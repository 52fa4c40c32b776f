"""bench/docmerge.py - put some parts' results into an existing docs/PERFORMANCE.md (`bench/run --only`).

A run of only some parts must not erase the others' figures: in the old document, the rows of the "## Results"
table and the entries of "## How each part was measured" that belong to those parts are replaced by the new
document's (rows and entries in part order; the old order kept within a part); every other line stays as it was.
"""

import re

RESULTS = "## Results"
HOW = "## How each part was measured"
ENTRY = re.compile(r"^- \*\*(\w+)\.")
SEPARATOR = re.compile(r"^\|( *:?-+:? *\|)+$")


def _section(lines, title):
    """(start, end) of the section's body: after its title, up to the next '## ' heading."""
    if title not in lines:
        raise ValueError("no %r section" % title)
    start = lines.index(title) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def _table(body):
    """(lines up to the header and separator, rows, lines after) of the one markdown table in body."""
    idx = [i for i, line in enumerate(body) if line.startswith("|")]
    if len(idx) < 2 or idx != list(range(idx[0], idx[-1] + 1)) or not SEPARATOR.match(body[idx[0] + 1]):
        raise ValueError("no single results table with a header")
    return body[:idx[0] + 2], body[idx[0] + 2:idx[-1] + 1], body[idx[-1] + 1:]


def _row_part(row):
    return row.split("|")[1].strip()


def _entries(body):
    """(lines before, [(part, lines)], lines after): an entry is '- **N. ...' and its indented lines."""
    before, entries, after = [], [], []
    for line in body:
        m = ENTRY.match(line)
        if m:
            entries.append((m.group(1), [line]))
        elif entries and line.startswith("  "):
            entries[-1][1].append(line)
        elif entries:
            after.append(line)
        else:
            before.append(line)
    return before, entries, after


def _order(part):
    return (0, int(part), "") if part.isdigit() else (1, 0, part)


def merge(old, new, parts):
    """old's text with the table rows and the measured-how entries of `parts` (part numbers as strings) replaced
    by new's. ValueError when either document lacks the two sections."""
    parts = set(parts)
    out, src = old.split("\n"), new.split("\n")

    start, end = _section(out, RESULTS)
    head, rows, tail = _table(out[start:end])
    nstart, nend = _section(src, RESULTS)
    new_rows = [r for r in _table(src[nstart:nend])[1] if _row_part(r) in parts]
    rows = sorted([r for r in rows if _row_part(r) not in parts] + new_rows, key=lambda r: _order(_row_part(r)))
    out[start:end] = head + rows + tail

    start, end = _section(out, HOW)
    before, entries, after = _entries(out[start:end])
    nstart, nend = _section(src, HOW)
    new_entries = [e for e in _entries(src[nstart:nend])[1] if e[0] in parts]
    entries = sorted([e for e in entries if e[0] not in parts] + new_entries, key=lambda e: _order(e[0]))
    out[start:end] = before + [line for _, lines in entries for line in lines] + after
    return "\n".join(out)
