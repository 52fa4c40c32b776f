"""Placement that holds for every launch (issue 13): instances launched at once (one by-hand `queue 3`, and three
API launches) of an image cached on one node only all start on that node while it has room, on a real pool with
two nodes: A (the sandbox's own startd, NUM_CPUS 8) and B ("nodeb", Sandbox.add_node, NUM_CPUS 4, room for three).

What makes it hold (config.d; tests/unit/test_speed_config.py checks each knob): the consumption policy on the nodes'
partitionable slot lets the negotiator match A three times in one cycle (without it the second instance goes to B),
CLAIM_PARTITIONABLE_LEFTOVERS = False keeps the schedd from filling A's leftovers without the negotiator, and
NEGOTIATOR_PRE_JOB_RANK no longer ranks a node with fewer free cores (B) above the job's cache-aware Rank (with
HTCondor's default all three would go to B).

The first test measures, and prints (no timing assertion), submit -> RUNNING of one instance submitted right after a
negotiation cycle ended, with HTCondor's defaults for the cycle knobs vs the shipped ones, and the node's part from
the prepare hook's end (overlay written) to the domain's start with VM_GAHP_SEND_ALL_CLASSAD true vs false. Both
instances are pinned to A and warm its cache. Node B is stopped at the end of the module.
"""

import glob
import json
import os
import time

import pytest

from helpers import by_hand, http, start_api, stop_api, wait_for
from sandbox import _kill, _pids_in_root

IMAGE = "placement.qcow2"
NODE_B = "nodeb"
ON_A = 'requirements = !regexp("@%s@", Name)' % NODE_B
INSTANCES = "/var/lib/condor-cloud/instances"
OVERRIDE = "/etc/condor/config.d/99zz-test-placement.config"   # read after 99sandbox.config
NEGOTIATOR_LOG = "/var/log/condor/NegotiatorLog"
FINISHED = "---------- Finished Negotiation Cycle ----------"
# HTCondor 23.9.6's defaults for what config.d now sets, and the interval shipped before (20 s).
BEFORE = ("NEGOTIATOR_INTERVAL = 20\nNEGOTIATOR_CYCLE_DELAY = 20\nNEGOTIATOR_MIN_INTERVAL = 5\n"
          "SCHEDD_MIN_INTERVAL = 5\nVM_GAHP_SEND_ALL_CLASSAD = True\n")
# The shipped knobs, with the shipped periodic cycle instead of the sandbox's 2 s (only the reschedule counts).
SHIPPED = "NEGOTIATOR_INTERVAL = 20\n"


@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image(IMAGE, test_images["poweroff"])
    sandbox.add_node(NODE_B, extra_env={"_CONDOR_NUM_CPUS": "4"})
    try:
        yield sandbox
    finally:
        try:
            _set_knobs(sandbox, None)
        finally:
            stop_node(sandbox, NODE_B)


def stop_node(sb, name):
    """Stop a node started by Sandbox.add_node (its condor_master, by PID; the startd leaves the collector)."""
    pid = sb.state["pids"].pop("condor_master_" + name, None)
    sb._save()
    if pid and pid in _pids_in_root(sb.root):
        _kill([pid], 60)
    wait_for("node %s to leave the pool" % name, lambda: "@%s@" % name not in sb.run(
        ["condor_status", "-af", "Name"], check=False).stdout, 60)


def _log_lines(sb, needle):
    path = sb.path(NEGOTIATOR_LOG)
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        return [line for line in f if needle in line]


def _set_knobs(sb, text):
    """Put text into an override read after the sandbox's config (None: remove it) and reconfigure the pool's
    daemons; returns once the negotiator has re-read its configuration."""
    path = sb.path(OVERRIDE)
    if text is None and not os.path.exists(path):
        return
    if text is None:
        os.unlink(path)
    else:
        with open(path, "w") as f:
            f.write(text)
    before = len(_log_lines(sb, "NEGOTIATOR_MIN_INTERVAL = "))
    sb.run(["condor_reconfig"])
    wait_for("the negotiator to reconfigure", lambda: len(_log_lines(sb, "NEGOTIATOR_MIN_INTERVAL = ")) > before, 60)
    time.sleep(1)   # the schedd's reconfig, which leaves no log line to wait for


def _after_a_cycle(sb):
    """Return right after a negotiation cycle has ended (the worst moment to submit)."""
    before = len(_log_lines(sb, FINISHED))
    sb.run(["condor_reschedule"])
    wait_for("a negotiation cycle", lambda: len(_log_lines(sb, FINISHED)) > before, 90, interval=0.1)


def _status(sb, cluster):
    """{proc: (JobStatus, RemoteHost)} of a job cluster."""
    out = sb.run(["condor_q", str(cluster), "-af", "ProcId", "JobStatus", "RemoteHost"]).stdout
    return {int(p): (int(s), h) for p, s, h in (line.split() for line in out.splitlines() if line.strip())}


def _time_to_running(sb, text):
    """(cluster, seconds from submit to RUNNING, seconds from overlay written to domain started)."""
    t0 = time.time()
    cluster = sb.submit(text)
    wait_for("job %d RUNNING" % cluster, lambda: _status(sb, cluster).get(0, (0,))[0] == 2, 120, sb, cluster,
             interval=0.1)
    running = time.time() - t0
    overlay = wait_for("the overlay of %d.0" % cluster, lambda: glob.glob(sb.path(
        "%s/%d.0-*/vda.qcow2" % (INSTANCES, cluster))), 120, sb, cluster, interval=0.1)[0]
    written = os.stat(overlay).st_mtime   # read before QEMU writes to it: vm-gahp needs seconds to start it
    return cluster, running, _domain_started(sb, cluster) - written


def _domain_started(sb, cluster, timeout=120):
    """When the job's domain started: its QEMU pid file's mtime (libvirt's state directory), else when
    `virsh list` first showed it."""
    end = time.time() + timeout
    while time.time() < end:
        pidfiles = glob.glob(sb.path("/run/libvirt/qemu/*_%d.0.pid" % cluster))
        if pidfiles:
            return os.stat(pidfiles[0]).st_mtime
        if "_%d.0" % cluster in sb.virsh("list", "--name", check=False):
            return time.time()
        time.sleep(0.1)
    raise AssertionError("the domain of %d.0 did not start in %ss\n%s" % (cluster, timeout, sb.starter_log()))


def _image_cached_on(sb, node_filter):
    """Names of the slots that advertise IMAGE in CloudCachedImages (a comma-separated list without spaces)."""
    out = sb.run(["condor_status", "-af", "Name", "CloudCachedImages"], check=False).stdout
    rows = [line.split(None, 1) for line in out.splitlines() if len(line.split(None, 1)) == 2]
    return [name for name, images in rows
            if node_filter(name) and IMAGE in [i.strip() for i in images.strip().split(",")]]


def _on_a(host):
    return host and "@%s@" % NODE_B not in host


def test_submit_to_running_with_old_and_shipped_knobs(pool):
    sb = pool
    try:
        _set_knobs(sb, BEFORE)
        _after_a_cycle(sb)
        old_cluster, old_running, old_start = _time_to_running(sb, by_hand(IMAGE, extra=[ON_A]))
        _set_knobs(sb, SHIPPED)
        _after_a_cycle(sb)
        new_cluster, new_running, new_start = _time_to_running(sb, by_hand(IMAGE, extra=[ON_A]))
    finally:
        _set_knobs(sb, None)
    print("\nsubmit -> RUNNING, submitted right after a negotiation cycle: HTCondor's cycle knobs %.1f s (job %d), "
          "shipped knobs %.1f s (job %d)\noverlay written -> domain started: VM_GAHP_SEND_ALL_CLASSAD true %.1f s, "
          "false %.1f s" % (old_running, old_cluster, new_running, new_cluster, old_start, new_start))
    for cluster in (old_cluster, new_cluster):
        ad = sb.job_ad(cluster)
        assert _on_a(ad.get("RemoteHost") or ad.get("LastRemoteHost")), ad


def _ensure_cached_on_a_only(sb):
    """A advertises the image in CloudCachedImages (filled by the first test's instances, else by one here), B
    does not."""
    if not _image_cached_on(sb, _on_a):
        cluster = sb.submit(by_hand(IMAGE, extra=[ON_A]))
        sb.wait_job(cluster, ("running", "completed"), timeout=180)
    wait_for("node A to advertise %s" % IMAGE, lambda: _image_cached_on(sb, _on_a), 120)
    assert _image_cached_on(sb, lambda n: not _on_a(n)) == []


def _hosts_when_running(sb, clusters, count, timeout=180):
    """RemoteHost of each of count jobs (of the clusters), once all of them run."""
    def all_running():
        hosts = []
        for cluster in clusters:
            hosts += [h for s, h in _status(sb, cluster).values() if s == 2]
        return hosts if len(hosts) == count else None
    return wait_for("%d instances running" % count, all_running, timeout, sb, clusters[0], interval=0.2)


def test_queue_3_all_start_on_the_node_with_the_image_cached(pool):
    sb = pool
    _ensure_cached_on_a_only(sb)
    t0 = time.time()
    cluster = sb.submit(by_hand(IMAGE, count=3))
    hosts = _hosts_when_running(sb, [cluster], 3)
    print("\nqueue 3: all RUNNING %.1f s after the submit, on %s" % (time.time() - t0, hosts))
    assert all(_on_a(h) for h in hosts), hosts
    sb.run(["condor_rm", str(cluster)], user="alice")
    for proc in range(3):
        sb.wait_job(cluster, ("removed",), timeout=180, proc=proc)


def test_three_api_launches_all_start_on_the_node_with_the_image_cached(pool):
    sb = pool
    _ensure_cached_on_a_only(sb)
    start_api(sb)
    try:
        status, _, body = http(sb, "GET", "/api/images", "alice")
        assert status == 200, body
        (image_id,) = [i["id"] for i in json.loads(body)["images"] if i["name"] == IMAGE]
        t0 = time.time()
        clusters = []
        for n in range(3):
            status, _, body = http(sb, "POST", "/api/instances", "alice",
                                   data={"image_id": image_id, "hwp_id": "small", "name": "placement-%d" % n})
            assert status == 201, body
            clusters.append(int(json.loads(body)["instance"]["id"].split("_")[-2].split(".")[0]))
        hosts = _hosts_when_running(sb, clusters, 3)
        print("\n3 API launches: all RUNNING %.1f s after the first POST, on %s" % (time.time() - t0, hosts))
        assert all(_on_a(h) for h in hosts), hosts
        for cluster in clusters:
            sb.run(["condor_rm", str(cluster)])
        for cluster in clusters:
            sb.wait_job(cluster, ("removed",), timeout=180)
    finally:
        stop_api(sb)
