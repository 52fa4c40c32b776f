"""The benchmark suite behind `make bench` (issue 7); bench/run is its entry point and writes docs/PERFORMANCE.md.

  runner.py   arguments, the order of the parts, the work directory, errors -> exit status
  common.py   what every part shares: the run's Context (rows, notes, shuffling), log, timed commands
  parts/      one module per part, named after what it measures (parts/__init__.py lists them in order)
  report.py   statistics, table cells and the document; docmerge.py puts some parts into an existing one
  hooks.py    a node for hooks/prepare without HTCondor (parts 1 and 3); files.py: page cache, sparse files, XFS;
              store.py: the images of parts 1-3
  pool.py     the real-pool sandbox (tests/sandbox) for parts 4-6: start, knobs, stop

Modules import each other relatively, so the package works under any name (the unit tests load it as another one).
profile_prepare.py and cache_reuse_check.py are scripts of their own (the first is run by part 1).
"""
