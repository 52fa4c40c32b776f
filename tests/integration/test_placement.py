"""Placement that holds for every launch (issue 13, item 2) on the session's real pool plus a second node
(Sandbox.add_node): instances launched at once of an image cached on one node only all start on that node while it
has room, and the rest elsewhere.

- each node caches for itself: an image is cached where an instance of it ran, not elsewhere
- one by-hand submit with `queue 3`, and three API launches at once, of an image cached on the sandbox's own node
  ("main", room for 8): all three run there
- `queue 3` of an image cached on the second node, which has room for two (NUM_CPUS 2, one per instance): two
  run there, one on main, and all three boot

What makes it hold (config.d; tests/unit/config_d/test_speed_config.py checks each knob, docs/DESIGN.txt "Launch
speed: the knobs and the floors" says why): CONSUMPTION_POLICY on the nodes, so one negotiation cycle can match a node
once per instance; NEGOTIATOR_MATCHLIST_CACHING = False, without which HTCondor 23.9.6 ranks a node it matched below
the others for the next instance (`queue 3` went cached, other, other); CLAIM_PARTITIONABLE_LEFTOVERS = False, without
which the schedd starts a user's other idle instances on a claimed node's leftovers, Rank or not. In the third test
the negotiator deducts each match's core from the second node's slot within the cycle, so the third instance goes
to main. (A room made with VM_MEMORY instead would not hold on HTCondor 23.9.6: its startd counts only the last VM
started, see docs/DESIGN.txt.)

Where an instance runs is where its node's prepare hook made its instance directory (a refused start never gets
there), and the job's RemoteHost names the same node. The instances are of the short-lived poweroff image.
"""

import concurrent.futures
import json
import os
import re

import pytest

from helpers import BOOTED, by_hand, console, http, start_api, stop_api
from host import kill, pids_in_root
from wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

NODE = "placenode"
MAIN = "main"
ON_MAIN = "placement-main.qcow2"        # cached on main only
ON_NODE = "placement-node.qcow2"        # cached on NODE only
NODE_CPUS = 2                           # room for two instances of one core (by hand: RequestCpus 1)
INSTANCES = {MAIN: "/var/lib/condor-cloud/instances"}
CACHES = {MAIN: "/var/lib/condor-cloud/local_cache"}
PIN = {MAIN: 'requirements = !regexp("@%s@", Name)' % NODE, NODE: 'requirements = regexp("@%s@", Name)' % NODE}


JOBS = []                               # every cluster the module submits, removed at its end
WARM = {}                               # {node: cluster of the instance that cached the node's image}


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    """The pool with NODE added and the API started; ON_MAIN cached on main only, ON_NODE on NODE only (one pinned
    instance each, left to complete). Every job the module starts is removed, and NODE stopped, at the end."""
    sb = sandbox
    for image in (ON_MAIN, ON_NODE):
        sb.put_image(image, test_images["poweroff"])
    try:
        dirs = sb.add_node(NODE, extra_env={"_CONDOR_NUM_CPUS": str(NODE_CPUS)})
        INSTANCES[NODE], CACHES[NODE] = dirs["instances"], dirs["cache"]
        start_api(sb)
        for node, image in ((MAIN, ON_MAIN), (NODE, ON_NODE)):
            WARM[node] = submit(sb, by_hand(image, extra=[PIN[node]]))
        for node, image in ((MAIN, ON_MAIN), (NODE, ON_NODE)):
            wait_for("%s advertised as cached on %s only" % (image, node), lambda i=image: cached_on(sb, i), 180,
                     accept=lambda nodes, n=node: nodes == [n], explain=lambda n=node: sb.diagnose(WARM[n]))
        yield sb
    finally:
        stop_api(sb)
        remove_all(sb)
        stop_node(sb)


def submit(sb, text):
    cluster = sb.submit(text, user="alice")
    JOBS.append(cluster)
    return cluster


def remove_all(sb):
    """condor_rm every job of the module and wait until they have left the queue (so none runs on NODE)."""
    clusters = [str(c) for c in JOBS]
    if clusters:
        sb.run(["condor_rm"] + clusters, check=False)
        wait_for("the module's jobs to leave the queue", lambda: sb.run(
            ["condor_q", "-allusers", "-af", "ClusterId"] + clusters, check=False).stdout.split(), 180, interval=2,
            accept=lambda left: left == [])


def stop_node(sb):
    """Stop NODE (its condor_master, by PID) and wait until it has left the pool."""
    pid = sb.state["pids"].pop("condor_master_" + NODE, None)
    sb.save()
    if pid and pid in pids_in_root(sb.root):
        kill([pid], 60)
    wait_for("node %s to leave the pool" % NODE, lambda: "@%s@" % NODE not in sb.run(
        ["condor_status", "-af", "Name"], check=False).stdout, 60)


# -- where things are ----------------------------------------------------------------------------------------
def node_of(slot):
    """The sandbox node of a slot name: 'slot1_1@placenode@localhost' -> NODE, main's 'slot1_1@localhost' -> MAIN."""
    parts = slot.strip('"').split("@")
    return parts[1] if len(parts) == 3 else MAIN


def cached_on(sb, image):
    """The nodes whose startd advertises image in CloudCachedImages (a comma-separated list)."""
    out = sb.run(["condor_status", "-af:,", "Name", "CloudCachedImages"], check=False).stdout
    return sorted({node_of(name) for name, _, images in (line.partition(",") for line in out.splitlines())
                   if image in [i.strip() for i in images.split(",")]})


def instance_nodes(sb, cluster, proc):
    """The nodes holding an instance directory of the job: its prepare hook made it, so the instance started there
    (a start the node refused never gets that far)."""
    pattern = re.compile(r"%d\.%d-[0-9a-f]{8}$" % (cluster, proc))
    return [node for node, d in sorted(INSTANCES.items()) if any(pattern.match(n) for n in os.listdir(sb.path(d)))]


def where_they_run(sb, jobs, timeout=180):
    """{job: node} of the jobs (cluster, proc): each job's node is noted when it runs (JobStatus 2) with an instance
    directory on exactly one node; its RemoteHost must name the same node."""
    seen = {}

    def probe():
        for cluster, proc in jobs:
            if (cluster, proc) in seen:
                continue
            out = sb.run(["condor_q", "%d.%d" % (cluster, proc), "-af", "JobStatus", "RemoteHost"]).stdout.split()
            assert len(out) == 2, "job %d.%d left the queue before it was seen running" % (cluster, proc)
            status, host = out
            assert status != "5", "job %d.%d held: %s" % (cluster, proc, sb.hold_reason(cluster, proc))
            nodes = instance_nodes(sb, cluster, proc)
            if status == "2" and len(nodes) == 1 and host != "undefined":
                seen[(cluster, proc)] = (nodes[0], node_of(host))
        return dict(seen)

    wait_for("%d instances to run" % len(jobs), probe, timeout, interval=0.5, accept=lambda s: len(s) == len(jobs),
             explain=lambda: sb.diagnose(jobs[0][0]))
    assert all(directory == host for directory, host in seen.values()), seen
    return {job: directory for job, (directory, _) in seen.items()}


# -- tests ---------------------------------------------------------------------------------------------------
def test_each_node_caches_for_itself(pool):
    """Two execute nodes, each with its own cache: an image is cached where an instance of it ran, not elsewhere."""
    def cached(node, image):
        return [n for n in os.listdir(pool.path(CACHES[node])) if n.startswith(image + "@")]

    assert cached(MAIN, ON_MAIN) and not cached(NODE, ON_MAIN)
    assert cached(NODE, ON_NODE) and not cached(MAIN, ON_NODE)


def test_queue_3_all_run_on_the_node_with_the_image_cached(pool):
    cluster = submit(pool, by_hand(ON_MAIN, count=3))
    assert "CloudCachedImages" in pool.job_ad(cluster)["Rank"]   # no requirements: the CloudRank transform steers
    placed = where_they_run(pool, [(cluster, proc) for proc in range(3)])
    assert sorted(placed.values()) == [MAIN] * 3, placed


def test_three_api_launches_at_once_all_run_on_the_node_with_the_image_cached(pool):
    status, _, body = http(pool, "GET", "/api/images", "alice")
    assert status == 200, body
    (image_id,) = [i["id"] for i in json.loads(body)["images"] if i["name"] == ON_MAIN]

    def launch(n):
        return http(pool, "POST", "/api/instances", "alice",
                    data={"image_id": image_id, "hwp_id": "small", "name": "placement-%d" % n})

    with concurrent.futures.ThreadPoolExecutor(3) as threads:
        answers = list(threads.map(launch, range(3)))
    clusters = []
    for status, _, body in answers:
        assert status == 201, body
        clusters.append(int(json.loads(body)["instance"]["id"].split("_")[-2].split(".")[0]))
    JOBS.extend(clusters)
    placed = where_they_run(pool, [(cluster, 0) for cluster in clusters])
    assert sorted(placed.values()) == [MAIN] * 3, placed


def test_queue_3_fills_the_cached_node_and_the_rest_runs_elsewhere(pool):
    # NODE has room for two once its warming instance has ended (its slot's Cpus back to NODE_CPUS)
    pool.wait_job(WARM[NODE], ("completed",), timeout=240)
    node_slot = 'PartitionableSlot && regexp("@%s@", Name)' % NODE
    wait_for("%s to advertise Cpus %d" % (NODE, NODE_CPUS), lambda: pool.run(
        ["condor_status", "-constraint", node_slot, "-af", "Cpus"]).stdout.split(), 60,
        accept=lambda v: v == [str(NODE_CPUS)])
    cluster = submit(pool, by_hand(ON_NODE, count=3))
    jobs = [(cluster, proc) for proc in range(3)]
    placed = where_they_run(pool, jobs)
    assert sorted(placed.values()) == [MAIN, NODE, NODE], placed
    for _, proc in jobs:   # and each is a working instance: its guest boots
        wait_for("instance %d.%d to boot" % (cluster, proc), lambda p=proc: BOOTED in console(pool, cluster, p), 240,
                 interval=2, explain=lambda: pool.diagnose(cluster))
