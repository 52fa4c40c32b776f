"""Unit-test fixtures. Side effects are forbidden by default: a test that starts a subprocess fails unless it is
marked @pytest.mark.subprocess (cloud-init's disable_subp_usage habit); what such a test runs is real.

Layout: tests/unit mirrors the code. The tests of condor_cloud/<role>/<path>/<module>.py are in
tests/unit/<role>/<path>/test_<module>.py (core/, node/, node/as_condor_cloud/, node/as_root/, node/as_condor/,
master/, master/api/, master/ec2/); the tests of the config.d snippets are in tests/unit/config_d/; scenarios/ holds
the named cross-cutting scenarios that go through several modules at once (the binding of an instance to its starter
across all hooks, issue 17's failure scenarios). Every test directory is a package (__init__.py; basenames such as
test_cli.py repeat), tests/unit itself is not: it is on sys.path, so `from support import ...` works everywhere.

Shared helpers and keys are defined once in support.py; fixtures used by more than one directory are here, a
directory's own conftest.py holds only what that directory uses (master/api: `env`; master/ec2: the EC2 app)."""

import os
import subprocess
import sys
import textwrap

import pytest

from support import REPO, make_qcow2

sys.path.insert(0, REPO)


def pytest_configure(config):
    config.addinivalue_line("markers", "subprocess: the test may start real subprocesses (qemu-img, hooks)")


@pytest.fixture(autouse=True)
def _forbid_subprocess(request, monkeypatch):
    if request.node.get_closest_marker("subprocess"):
        return
    real_popen = subprocess.Popen

    class NoPopen(real_popen):
        def __init__(self, args, *a, **kw):
            raise AssertionError("unit test started a subprocess %r; mark it @pytest.mark.subprocess" % (args,))

    monkeypatch.setattr(subprocess, "Popen", NoPopen)


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    """A node layout in tmp_path (store, cache, instances) and a CONDOR_CONFIG that points the CLOUD_* knobs at it."""
    import htcondor2

    class Layout:
        pass

    lay = Layout()
    lay.root = tmp_path
    lay.store = tmp_path / "shared_images"
    lay.cache = tmp_path / "local_cache"
    lay.instances = tmp_path / "instances"
    lay.outside = tmp_path / "outside"
    lay.consoles = tmp_path / "consoles"
    # The starter's scratch directory that hooks see (_CONDOR_SCRATCH_DIR); instances are bound to it.
    lay.scratch = tmp_path / "scratch"
    for d in (lay.store, lay.store / "staging", lay.cache, lay.instances, lay.outside, lay.consoles, lay.scratch):
        d.mkdir()
    monkeypatch.setenv("_CONDOR_SCRATCH_DIR", str(lay.scratch))
    lay.config = tmp_path / "condor_config"
    lay.extra = ""

    def write_config(extra=""):
        lay.config.write_text(textwrap.dedent("""\
            CLOUD_IMAGE_STORE = {store}
            CLOUD_IMAGE_CACHE = {cache}
            CLOUD_INSTANCE_DIR = {instances}
            CLOUD_CONSOLE_DIR = {consoles}
            CLOUD_TEMPLATE_DIR = {templates}
            CLOUD_DOMAIN_TYPE = qemu
            CLOUD_NETWORK = none
            CLOUD_CACHE_MAX_SIZE = 1G
            CLOUD_PREPARE_TIMEOUT = 60
            CLOUD_ORPHAN_GRACE = 60
            """).format(store=lay.store, cache=lay.cache, instances=lay.instances, consoles=lay.consoles,
                        templates=os.path.join(REPO, "templates")) + extra)
        htcondor2.reload_config()

    lay.write_config = write_config
    monkeypatch.setenv("CONDOR_CONFIG", str(lay.config))
    write_config()
    yield lay
    # Leave no test's knobs behind for the next test. (Not CONDOR_CONFIG=ONLY_ENV: after it, htcondor2 25.x
    # ignores CONDOR_CONFIG on later reloads.)
    lay.config.write_text("")
    htcondor2.reload_config()


@pytest.fixture
def shipped_config(tmp_path, monkeypatch):
    """htcondor2.param over the shipped config.d snippets (master, API, node), read by HTCondor's own parser."""
    import htcondor2

    config = tmp_path / "condor_config"
    # (the quota overrides file of this host, if any, stays out: 22...config includes CLOUD_QUOTA_FILE)
    config.write_text("CLOUD_QUOTA_FILE = %s\n" % (tmp_path / "no-quotas.config") +
                      "".join(open(os.path.join(REPO, "config.d", name)).read() + "\n" for name in
                              ("20condor_cloud_master.config", "22condor_cloud_quotas.config",
                               "25condor_cloud_api.config", "30condor_cloud_node.config")))
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    htcondor2.reload_config()
    yield htcondor2.param
    config.write_text("")
    htcondor2.reload_config()


@pytest.fixture
def demo(cloud):
    """`cloud` with a real 32 MiB qcow2 image demo.qcow2 in the store."""
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=b"DEMO-BASE" * 100)
    return cloud


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
