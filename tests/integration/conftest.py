"""Integration-test fixtures: one real HTCondor VM pool (tests/sandbox/sandbox.py's Sandbox) per test session.

The `sandbox` fixture is session-scoped: the pool comes up once (a few seconds with a cached root; the first
run on a machine builds the root, ~1 min) and its teardown ALWAYS runs, stopping every daemon and QEMU by PID
and undoing every mount.  Set CLOUD_SANDBOX_KEEP_LOGS=DIR to keep the pool's logs after the session.
`test_images` gives the cached test images (tests/images/build-image): {"poweroff": path, "sleep": ..., ...}.
"""
import os
import subprocess
import sys
import warnings

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))

import sandbox as sandbox_mod  # noqa: E402
from errors import WaitTimeout  # noqa: E402
from wait import wait_for  # noqa: E402

VARIANTS = ("poweroff", "sleep", "write", "seed", "dhcp", "acpi")


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("the integration sandbox needs root (mounts, chroot, network namespace)")


@pytest.fixture(scope="session")
def test_images():
    """Paths (on the host) of the cached test images, by variant."""
    _need_root()
    out = subprocess.run([os.path.join(REPO, "tests", "images", "build-image")] + list(VARIANTS),
                         stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout.split()
    return dict(zip(VARIANTS, out))


@pytest.fixture(scope="session")
def sandbox():
    """A running pool with the project installed (its RPMs' payloads, or make install-node install-master)."""
    _need_root()
    # A fixed name: the next session cleans up after a crashed one (CLOUD_SANDBOX_NAME to run two at once). Under
    # pytest-xdist (make check-integration) each worker has a pool of its own, named after the worker: the pools
    # live in separate roots and network namespaces, so they share nothing but the cached root and images.
    name = os.environ.get("CLOUD_SANDBOX_NAME", "pytest")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        name += "-" + os.environ["PYTEST_XDIST_WORKER"]
    sb = sandbox_mod.Sandbox(name=name)
    try:
        sb.up()
        yield sb
    finally:
        sb.stop(keep_logs=os.environ.get("CLOUD_SANDBOX_KEEP_LOGS"))


@pytest.fixture(autouse=True, scope="module")
def _empty_queue_after_module(request):
    """After each test module that used the pool: remove every job it left and wait for their VMs to go, so a
    failed test's instance never disturbs the next module's checks."""
    sb = request.getfixturevalue("sandbox") if "sandbox" in request.fixturenames else None
    yield
    if sb is None:
        return
    sb.run(["condor_rm", "-all"], check=False)

    def empty():
        left = sb.run(["condor_q", "-allusers", "-af", "ClusterId"], check=False).stdout.split()
        return not left and not sb.virsh("list", "--name", check=False).strip()

    try:
        wait_for("the queue and libvirt to be empty after %s" % request.module.__name__, empty, 180, interval=2)
    except WaitTimeout as exc:   # the next module's own checks say what it finds; keep going, but say so
        warnings.warn(str(exc).split("\n", 1)[0])
