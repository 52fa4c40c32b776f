"""Shared by both tiers: tests/ on sys.path (tests/public_keys.py), and the option --regenerate-output, which
rewrites golden files instead of comparing (virt-manager's habit)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--regenerate-output", action="store_true", default=False,
                     help="rewrite golden files under tests/data with the current output")
