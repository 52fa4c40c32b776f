"""Shared pytest options: --regenerate-output rewrites golden files instead of comparing (virt-manager's habit)."""


def pytest_addoption(parser):
    parser.addoption("--regenerate-output", action="store_true", default=False,
                     help="rewrite golden files under tests/data with the current output")
