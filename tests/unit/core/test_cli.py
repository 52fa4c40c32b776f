"""condor-cloud's command groups (condor_cloud/core/cli.py gathers the installed roles' commands)."""

import pytest

from support import cli_runner


@pytest.fixture
def run(cloud):
    return cli_runner(cloud)


def test_help(run):
    r = run("--help")
    assert r.exit_code == 0
    for group in ("image", "instance", "node", "user"):
        assert group in r.output
