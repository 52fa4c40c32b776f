"""Crashes leave no ghosts and lose nothing (issue 17, items 1 and 2) on the session's real pool plus a second node
(Sandbox.add_node) whose HTCondor the tests kill, restart, freeze and switch off. Every state is read through the
API, and at the moment it turns true also through condor_q and the CLI, within the issue's bound of 60 s:

- a running instance's condor_starter killed (SIGKILL): PENDING, then RUNNING again as a fresh instance (new
  domain, new overlay); the node keeps nothing of the old one
- the node's whole HTCondor killed (SIGKILL) and restarted 5 s later: PENDING, then RUNNING again there; the
  guest's QEMU outlived the kill, and the node, back, destroys it
- the node frozen (SIGSTOP on its HTCondor and the guest's QEMU: what the master sees of a power loss or a hang,
  no socket closed): PENDING; thawed, the node kills its stale copy
- DELETE while the node's startd shuts down (condor_off -daemon startd): gone; the node, back, keeps nothing of it

What makes it hold: config.d (the CloudLease transform, JobLeaseDuration = 36; STARTER_HANDLES_ALIVES = False) and
CloudJobs.remove (RemoveX when a removed job is still queued 20 s later). Why, and the HTCondor 23.9.6 source
behind it: docs/DESIGN.txt, "Failures: instances and nodes"; the knobs are unit-tested in
tests/unit/config_d/test_failure_config.py and tests/unit/master/test_jobs.py. One instance at a time (plus its restart);
the measured times are printed.

The sandbox's nodes share one libvirtd, so two domains of one job (same name) cannot run at once even on two
nodes: the by-hand instances are pinned to the second node, and a lost one starts again there (after the node's
cleanup) or, while its frozen copy exists, nowhere.
"""

import glob
import json
import os
import re
import signal
import time

import pytest

from helpers import by_hand, http, start_api, stop_api
from host import kill, pids_in_root
from wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")

IMAGE = "ghost.qcow2"
NODE = "ghostnode"
BOUND = 60                       # issue 17: a true state within 60 s
MAIN_INSTANCES = "/var/lib/condor-cloud/instances"
MAIN_LOG = "/var/log/condor"
NODES = "/var/lib/sandbox-nodes"
ON_NODE = 'requirements = regexp("@%s@", Name)' % NODE
# First start on the node only: once lost there, the instance stays PENDING (no second domain of the same name
# while the frozen one exists, see above).
ON_NODE_ONCE = 'requirements = regexp("@%s@", Name) && (NumShadowStarts ?: 0) == 0' % NODE


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(sandbox, test_images):
    sandbox.put_image(IMAGE, test_images["sleep"])   # ignores ACPI shutdown: a vacate takes MachineMaxVacateTime
    start_api(sandbox)
    try:
        sandbox.add_node(NODE)
        yield sandbox
    finally:
        stop_api(sandbox)
        stop_node(sandbox)


def stop_node(sb):
    """Stop the second node (its condor_master, by PID: a graceful shutdown that vacates what runs there)."""
    pid = sb.state["pids"].pop("condor_master_" + NODE, None)
    sb.save()
    if pid and pid in pids_in_root(sb.root):
        for p in node_pids(sb, pid):  # never leave it frozen
            _signal(p, signal.SIGCONT)
        kill([pid], 60)
    wait_for("node %s to leave the pool" % NODE, lambda: "@%s@" % NODE not in sb.run(
        ["condor_status", "-af", "Name"], check=False).stdout, 60)


# -- where things are ----------------------------------------------------------------------------------------
def node_of(remote_host):
    """The sandbox node of a slot name: 'slot1_1@ghostnode@host' -> 'ghostnode'; the sandbox's own startd -> None."""
    parts = remote_host.split("@")
    return parts[1] if len(parts) == 3 else None


def instance_root(node):
    return MAIN_INSTANCES if node is None else "%s/%s/instances" % (NODES, node)


def log_dir(node):
    return MAIN_LOG if node is None else "%s/%s/log" % (NODES, node)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def node_pids(sb, master=None):
    """The node's condor_master and all its descendants (startd, procd, starters, vm-gahp, hooks), by PID."""
    master = master or sb.state["pids"]["condor_master_" + NODE]
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    ours, found, todo = set(pids_in_root(sb.root)), [], [master]
    while todo:
        pid = todo.pop()
        if pid in ours:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def qemu_pid(sb, domain):
    path = sb.path("/run/libvirt/qemu/%s.pid" % domain)
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if pid in pids_in_root(sb.root) else None


def domains(sb, cluster):
    names = [n.strip() for n in sb.virsh("list", "--all", "--name").splitlines()]
    return [n for n in names if n.endswith("_%d.0" % cluster)]


def domain_uuids(sb):
    return [line.strip() for line in sb.virsh("list", "--all", "--uuid").splitlines() if line.strip()]


def q(sb, cluster, *attrs):
    """The job's attributes as condor_q prints them; None once it has left the queue."""
    out = sb.run(["condor_q", "%d.0" % cluster, "-af"] + list(attrs), check=False).stdout.split()
    return out or None


def starts(sb, cluster):
    value = (q(sb, cluster, "NumShadowStarts") or ["0"])[0]
    return int(value) if value.isdigit() else 0


def diagnostics(sb, node=None):
    """The logs that tell why a state did not turn true: the shadows', the schedd's, the node's startd."""
    out = []
    for name in ("ShadowLog", "SchedLog"):
        out.append("== %s\n%s" % (name, sb.log_tail(name, 40)))
    path = sb.path(log_dir(node) + "/StartLog")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            out.append("== %s\n%s" % (path, "".join(f.readlines()[-30:])))
    return "\n".join(out)


# -- the API ---------------------------------------------------------------------------------------------------
def api_instances(sb):
    status, _, body = http(sb, "GET", "/api/instances", "alice")
    assert status == 200, body
    return json.loads(body)["instances"]


def api_state(sb, instance_id):
    status, _, body = http(sb, "GET", "/api/instances/" + instance_id, "alice")
    if status == 404:
        return "gone"
    assert status == 200, body
    return json.loads(body)["instance"]["state"]


def api_launch(sb, name):
    status, _, body = http(sb, "GET", "/api/images", "alice")
    assert status == 200, body
    [image] = [i["id"] for i in json.loads(body)["images"] if i["name"] == IMAGE]
    status, _, body = http(sb, "POST", "/api/instances", "alice", data={"image_id": image, "hwp_id": "small",
                                                                       "name": name})
    assert status == 201, body
    instance_id = json.loads(body)["instance"]["id"]
    return instance_id, int(instance_id.split("_")[-2].split(".")[0])


def by_hand_on_node(sb, requirements):
    """alice's by-hand instance on the second node; its id as the API shows it to her."""
    cluster = sb.submit(by_hand(IMAGE, extra=[requirements]), user="alice")
    [instance_id] = wait_for("job %d in alice's API listing" % cluster, lambda: [
        i["id"] for i in api_instances(sb) if "_%d.0_" % cluster in i["id"]], 30)
    return instance_id, cluster


def running_vm(sb, instance_id, cluster, timeout=240):
    """Wait until the API shows the instance RUNNING and its domain runs from its instance directory on its node;
    returns {"node", "dir" (host path), "uuid", "domain", "starter" (pid), "starts"}."""
    def ready():
        if api_state(sb, instance_id) != "RUNNING":
            return None
        host = (q(sb, cluster, "RemoteHost") or ["undefined"])[0]
        if host == "undefined":
            return None
        node = node_of(host)
        metas = glob.glob(sb.path("%s/%d.0-*/instance.json" % (instance_root(node), cluster)))
        names = domains(sb, cluster)
        if len(metas) != 1 or len(names) != 1:
            return None
        with open(metas[0]) as f:
            meta = json.load(f)
        if sb.virsh("domuuid", names[0], check=False).strip() != meta.get("uuid"):
            return None
        return {"node": node, "dir": os.path.dirname(metas[0]), "uuid": meta["uuid"], "domain": names[0],
                "starter": meta["starter"]["pid"], "starts": starts(sb, cluster)}
    return wait_for("instance %s RUNNING with its domain" % instance_id, ready, timeout,
                    explain=lambda: sb.diagnose(cluster), interval=1)


def wait_true_state(sb, instance_id, cluster, since, before, what, node=None):
    """Poll the API every second from `since` (the failure) until it shows the instance as it is: PENDING (queued
    to start again), or RUNNING again (NumShadowStarts grew past `before`). A lost instance is started again, so
    STOPPED or gone fail. Then condor_q and the CLI must say the same. Returns (seconds, [(seconds, state)...])."""
    seen = []

    def started_again():
        state = api_state(sb, instance_id)
        if not seen or seen[-1][1] != state:
            seen.append((round(time.time() - since, 1), state))
        if state == "PENDING" or (state == "RUNNING" and starts(sb, cluster) > before):
            return True
        assert state == "RUNNING", "%s: the instance became %s (%s), not started again\n%s" % (
            what, state, seen, diagnostics(sb, node))
        return False

    wait_for("%s: the API to show the lost instance started again (it still shows it RUNNING)" % what,
             started_again, BOUND - (time.time() - since), explain=lambda: "%s\n%s" % (seen, diagnostics(sb, node)))
    elapsed = time.time() - since
    status, count = ((q(sb, cluster, "JobStatus", "NumShadowStarts") or ["gone"]) + ["0"])[:2]
    assert status == "1" or (status == "2" and int(count) > before), (what, status, count, sb.hold_reason(cluster))
    cli = json.loads(sb.run(["condor-cloud", "instance", "show", instance_id, "--json"]).stdout)
    assert cli["state"] == "PENDING" or (cli["state"] == "RUNNING" and starts(sb, cluster) > before), cli
    return elapsed, seen


def wait_gone(sb, instance_id, cluster, since, what, node=None):
    """Poll the API every second from `since` (the DELETE) until the instance has left it (404 and not listed);
    condor_q must not show it either. Returns (seconds, [(seconds, state)...])."""
    seen = []

    def gone():
        state = api_state(sb, instance_id)
        listed = any(i["id"] == instance_id for i in api_instances(sb))
        if not seen or seen[-1][1] != state:
            seen.append((round(time.time() - since, 1), state))
        return state == "gone" and not listed

    wait_for("%s: the instance to leave the API after its DELETE" % what, gone, BOUND - (time.time() - since),
             explain=lambda: "%s\n%s" % (seen, diagnostics(sb, node)))
    elapsed = time.time() - since
    assert q(sb, cluster, "JobStatus") is None
    return elapsed, seen


def node_keeps_nothing(sb, vm, cluster, timeout):
    """The node has destroyed the old instance's domain and removed its directory (overlay, seed, instance.json
    with its cache reference). Returns the seconds it took."""
    start = time.time()
    wait_for("the old domain %s to go" % vm["uuid"], lambda: vm["uuid"] not in domain_uuids(sb), timeout,
             explain=lambda: sb.diagnose(cluster))
    wait_for("the old instance directory %s to go" % vm["dir"], lambda: not os.path.exists(vm["dir"]), timeout,
             explain=lambda: sb.diagnose(cluster))
    return time.time() - start


def remove_by_hand(sb, cluster):
    sb.run(["condor_rm", "%d.0" % cluster], user="alice", check=False)
    wait_for("job %d to leave the queue" % cluster, lambda: q(sb, cluster, "JobStatus") is None, 120,
             explain=lambda: sb.diagnose(cluster))
    wait_for("job %d's domains to go" % cluster, lambda: domains(sb, cluster) == [], 120,
             explain=lambda: sb.diagnose(cluster))


# -- item 1: a lost VM is started again ------------------------------------------------------------------------
def test_killed_starter_instance_starts_again_fresh(pool):
    instance_id, cluster = api_launch(pool, "ghost-starter")
    vm = running_vm(pool, instance_id, cluster)
    with open("/proc/%d/comm" % vm["starter"]) as f:
        assert f.read().strip() == "condor_starter"
    os.kill(vm["starter"], signal.SIGKILL)
    killed = time.time()
    seconds, seen = wait_true_state(pool, instance_id, cluster, killed, vm["starts"], "starter killed", vm["node"])
    node_keeps_nothing(pool, vm, cluster, 60)
    cleaned = time.time() - killed
    again = running_vm(pool, instance_id, cluster, timeout=180)
    assert again["uuid"] != vm["uuid"] and again["dir"] != vm["dir"] and again["starts"] > vm["starts"]
    restarted = time.time() - killed
    status, _, body = http(pool, "DELETE", "/api/instances/" + instance_id, "alice")
    assert status == 204, body
    gone, gone_seen = wait_gone(pool, instance_id, cluster, time.time(), "DELETE after the restart", again["node"])
    print("\nstarter killed: API %s; true state after %.1f s; old domain and directory gone by %.1f s after the "
          "kill; RUNNING again, fresh, after %.1f s; DELETE -> gone in %.1f s %s" % (seen, seconds, cleaned, restarted,
                                                                               gone, gone_seen))


def test_node_htcondor_killed_and_restarted(pool):
    instance_id, cluster = by_hand_on_node(pool, ON_NODE)
    vm = running_vm(pool, instance_id, cluster)
    assert vm["node"] == NODE
    master = pool.state["pids"]["condor_master_" + NODE]
    pids = node_pids(pool, master)
    assert vm["starter"] in pids and master in pids
    try:
        for pid in pids:  # the master first: nothing restarts the rest
            _signal(pid, signal.SIGKILL)
        killed = time.time()
        wait_for("the node's processes to die", lambda: not set(pids) & set(pids_in_root(pool.root)), 10)
        survived = vm["uuid"] in domain_uuids(pool)  # the guest's QEMU (libvirt's child) outlives HTCondor
        time.sleep(5)                                # like a service manager restarting it
    finally:
        pool.add_node(NODE)
    seconds, seen = wait_true_state(pool, instance_id, cluster, killed, vm["starts"], "node HTCondor killed", NODE)
    node_keeps_nothing(pool, vm, cluster, 60)
    cleaned = time.time() - killed
    again = running_vm(pool, instance_id, cluster, timeout=180)
    assert again["node"] == NODE and again["uuid"] != vm["uuid"] and again["starts"] > vm["starts"]
    restarted = time.time() - killed
    remove_by_hand(pool, cluster)
    print("\nnode's HTCondor killed (%d processes; the guest's QEMU survived: %s), restarted after 5 s: API %s; "
          "true state after %.1f s; old domain and directory gone by %.1f s after the kill; RUNNING again, fresh, "
          "after %.1f s" % (len(pids), survived, seen, seconds, cleaned, restarted))


def test_frozen_node_instance_is_requeued_and_the_node_kills_its_copy(pool):
    instance_id, cluster = by_hand_on_node(pool, ON_NODE_ONCE)
    vm = running_vm(pool, instance_id, cluster)
    assert vm["node"] == NODE
    qemu = qemu_pid(pool, vm["domain"])
    frozen = node_pids(pool) + ([qemu] if qemu else [])
    try:
        for pid in frozen:
            _signal(pid, signal.SIGSTOP)
        stopped = time.time()
        seconds, seen = wait_true_state(pool, instance_id, cluster, stopped, vm["starts"], "node frozen", NODE)
        assert q(pool, cluster, "JobStatus") == ["1"]
    finally:
        for pid in frozen:
            _signal(pid, signal.SIGCONT)
    thawed = time.time()
    cleaned = node_keeps_nothing(pool, vm, cluster, 120)
    remove_by_hand(pool, cluster)
    print("\nnode frozen (%d processes, the guest's QEMU among them: %s): API %s; true state after %.1f s; thawed "
          "after %.1f s, the node destroyed its stale copy within %.1f s" % (len(frozen), bool(qemu), seen, seconds,
                                                                            thawed - stopped, cleaned))


# -- item 2: a DELETE is final ---------------------------------------------------------------------------------
def master_address(sb, node):
    with open(sb.path(log_dir(node) + "/.master_address")) as f:
        return f.readline().strip()


def shadow_log(sb, cluster, *needles):
    """The job's ShadowLog lines that contain one of needles, without their prefix."""
    with open(sb.path(MAIN_LOG + "/ShadowLog"), errors="replace") as f:
        lines = [line.strip() for line in f if "(%d.0)" % cluster in line and any(n in line for n in needles)]
    return [re.sub(r"^.*\(%d\.0\) \(\d+\): " % cluster, "", line) for line in lines]


def node_slots(sb, node):
    names = sb.run(["condor_status", "-af", "Name", "HasVM"], check=False).stdout.splitlines()
    return [n for n in names if n.split() and node_of(n.split()[0]) == node]


def test_delete_with_the_startd_off_is_final(pool):
    instance_id, cluster = api_launch(pool, "ghost-delete")
    vm = running_vm(pool, instance_id, cluster)
    node = vm["node"]
    address = master_address(pool, node)
    start_log = pool.path(log_dir(node) + "/StartLog")
    offset = os.path.getsize(start_log)

    def start_log_since():
        with open(start_log, errors="replace") as f:
            f.seek(offset)
            return f.read()

    try:
        pool.run(["condor_off", "-addr", address, "-daemon", "startd"])
        # DELETE while the startd shuts down: it refuses the shadow's kill (its claims are being vacated), so
        # the shadow would wait for the node up to the job lease
        wait_for("the startd to begin shutting down", lambda: "shutdown graceful" in start_log_since(), 30)
        status, _, body = http(pool, "DELETE", "/api/instances/" + instance_id, "alice")
        deleted = time.time()
        assert status == 204, body
        gone, seen = wait_gone(pool, instance_id, cluster, deleted, "DELETE with the startd off", node)
        # which end came first: the shadow's own (it sleeps out the job lease once the startd refused its kill:
        # "Failed to kill starter") or the API's RemoveX 20 s after the DELETE (the schedd SIGKILLs the shadow)
        shadow = shadow_log(pool, cluster, "Failed to kill starter", "EXITING")
        wait_for("the node's startd to be off", lambda: node_slots(pool, node) == [], 120,
                 explain=lambda: pool.diagnose(cluster))
        off = time.time() - deleted
    finally:
        pool.run(["condor_on", "-addr", address, "-daemon", "startd"], check=False)
    wait_for("the node's startd back", lambda: any(line.split()[-1] == "true" for line in node_slots(pool, node)),
             120, explain=lambda: pool.diagnose(cluster))
    back = time.time() - deleted
    cleaned = node_keeps_nothing(pool, vm, cluster, 60)
    # its console log too: the exit hook (evict, as the startd vacated it) or the cleanup (an orphan) removed it
    consoles = glob.glob(pool.path("/var/log/condor-cloud/consoles/%s.log*" % os.path.basename(vm["dir"])))
    assert consoles == [], "the destroyed instance's console log is still on its node: %s" % consoles
    print("\nDELETE with the startd off (node %s): API %s; gone after %.1f s; startd off after %.1f s, back after "
          "%.1f s, nothing of the instance left there (domain, overlay, seed, cache reference, console log) %.1f s "
          "later; shadow: %s" % (node or "main", seen, gone, off, back, cleaned, shadow))
