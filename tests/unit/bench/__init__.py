"""Unit tests of bench/, the benchmark suite. This test package is itself imported as `bench` (pytest puts
tests/unit on sys.path), so load() brings the suite's modules under another package name, `benchsuite` (the suite
imports its own modules relatively)."""

import importlib
import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
NAME = "benchsuite"


def load(module):
    """bench/<module>.py, e.g. load("report") or load("parts.part4_launch")."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, os.path.join(REPO, "bench", "__init__.py"),
                                                      submodule_search_locations=[os.path.join(REPO, "bench")])
        package = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = package
        spec.loader.exec_module(package)
    return importlib.import_module("%s.%s" % (NAME, module))
