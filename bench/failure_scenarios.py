"""The scenarios of part 6 (parts/part6_failures.py): how long the API takes to show the truth after a failure.

Two scenarios on the real-pool sandbox, each measured through the API with the helpers of
tests/integration/test_failures.py (imported, not copied: so this module is imported only when part 6 runs), from
the host clock, polling once a second:
- "starter killed": a running instance's condor_starter gets SIGKILL -> the API shows a true state (PENDING:
  requeued; wait_true_state), then RUNNING again as a fresh instance (running_vm: new domain, new overlay);
  then a DELETE with the node up -> gone (wait_gone), as the test does.
- "DELETE, startd off": the node's startd is shut down (condor_off -daemon startd); while it shuts down, DELETE
  -> the instance has left the API (404 and not listed; wait_gone).
These are measurements, not tests: the helpers' checks (condor_q and the CLI agree, a 60 s bound) still apply, and
a run whose check fails is reported as an error with what the API showed, not as a number.
"""

import inspect
import os
import signal
import subprocess
import sys
import time

from .common import REPO

for _d in (os.path.join(REPO, "tests", "sandbox"), os.path.join(REPO, "tests", "integration")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

import test_failures as tf  # noqa: E402  (tests/integration: the scenario helpers)
from helpers import http, start_api, stop_api, wait_for  # noqa: E402

SCENARIOS = ("starter", "delete_off")


def _job_gone(sb, cluster):
    return tf.q(sb, cluster, "JobStatus") is None


def clear_queue(sb, timeout=240):
    """Remove every job (earlier parts leave theirs, e.g. part 5's 1000 held ones) and wait for their domains."""
    sb.run(["condor_rm", "-all"], check=False)
    wait_for("an empty queue and no domains", lambda: not sb.run(
        ["condor_q", "-allusers", "-af", "ClusterId"], check=False).stdout.split()
        and not sb.virsh("list", "--name", check=False).strip(), timeout, interval=2)


def cleanup(sb, cluster):
    """Make sure a run leaves nothing: the job removed (forced if it lingers) and its domains gone."""
    if not _job_gone(sb, cluster):
        sb.run(["condor_rm", "%d.0" % cluster], check=False)
        try:
            wait_for("job %d to leave the queue" % cluster, lambda: _job_gone(sb, cluster), 60)
        except AssertionError:
            sb.run(["condor_rm", "-forcex", "%d.0" % cluster], check=False)
            wait_for("job %d to leave the queue (forced)" % cluster, lambda: _job_gone(sb, cluster), 60)
    wait_for("job %d's domains to go" % cluster, lambda: tf.domains(sb, cluster) == [], 120)


def knobs(sb):
    """The settings that set the floor, as the sandbox has them (read, not assumed)."""
    from condor_cloud.master.jobs import CloudJobs

    def param(name):
        return sb.run(["condor_config_val", name], check=False).stdout.strip() or "(unset)"

    return {"JobLeaseDuration": None,  # from a job's ad: the CloudLease transform sets it at submit
            "linger": inspect.signature(CloudJobs.remove).parameters["linger"].default,
            "STARTER_HANDLES_ALIVES": param("STARTER_HANDLES_ALIVES"),
            "STARTER_UPDATE_INTERVAL": param("STARTER_UPDATE_INTERVAL"),
            "CLOUD_CLEANUP_PERIOD": param("CLOUD_CLEANUP_PERIOD"),
            "MachineMaxVacateTime": param("MachineMaxVacateTime"),
            "NEGOTIATOR_INTERVAL": param("NEGOTIATOR_INTERVAL")}


def lease(sb, cluster, res):
    res["knobs"]["JobLeaseDuration"] = (tf.q(sb, cluster, "JobLeaseDuration") or ["?"])[0]


def starter_killed(sb, name, res):
    """One run of "starter killed"; returns the times (seconds since the kill / the DELETE)."""
    instance_id, cluster = tf.api_launch(sb, name)
    try:
        vm = tf.running_vm(sb, instance_id, cluster)
        lease(sb, cluster, res)
        with open("/proc/%d/comm" % vm["starter"]) as f:  # never kill a PID that is not this VM's starter
            if f.read().strip() != "condor_starter":
                raise RuntimeError("PID %d of instance.json is not a condor_starter" % vm["starter"])
        os.kill(vm["starter"], signal.SIGKILL)
        killed = time.time()
        true_s, seen = tf.wait_true_state(sb, instance_id, cluster, killed, vm["starts"], "starter killed",
                                          vm["node"])
        tf.node_keeps_nothing(sb, vm, cluster, 60)
        cleaned = time.time() - killed
        again = tf.running_vm(sb, instance_id, cluster, timeout=180)
        if again["uuid"] == vm["uuid"] or again["starts"] <= vm["starts"]:
            raise RuntimeError("RUNNING again, but not as a fresh instance: %s vs %s" % (again, vm))
        running_s = time.time() - killed
        status, _, body = http(sb, "DELETE", "/api/instances/" + instance_id, "alice")
        deleted = time.time()
        if status != 204:
            raise RuntimeError("DELETE answered %d: %s" % (status, body[:300]))
        gone_s, gone_seen = tf.wait_gone(sb, instance_id, cluster, deleted, "DELETE after the restart",
                                         again["node"])
        return {"pending": true_s, "running": running_s, "delete_up": gone_s,
                "detail": "API %s; old domain + directory gone by %.1f s; RUNNING again (fresh) %.1f s; DELETE "
                          "(startd on, %.0f s after RUNNING again) -> gone %.1f s %s"
                          % (seen, cleaned, running_s, deleted - killed - running_s, gone_s, gone_seen)}
    finally:
        cleanup(sb, cluster)


def delete_startd_off(sb, name, res):
    """One run of "DELETE with the node's startd off"; returns the time (seconds since the DELETE)."""
    instance_id, cluster = tf.api_launch(sb, name)
    address = node = None
    try:
        vm = tf.running_vm(sb, instance_id, cluster)
        lease(sb, cluster, res)
        node = vm["node"]
        address = tf.master_address(sb, node)
        start_log = sb.path(tf.log_dir(node) + "/StartLog")
        offset = os.path.getsize(start_log)

        def start_log_since():
            with open(start_log, errors="replace") as f:
                f.seek(offset)
                return f.read()

        sb.run(["condor_off", "-addr", address, "-daemon", "startd"])
        wait_for("the startd to begin shutting down", lambda: "shutdown graceful" in start_log_since(), 30)
        status, _, body = http(sb, "DELETE", "/api/instances/" + instance_id, "alice")
        deleted = time.time()
        if status != 204:
            raise RuntimeError("DELETE answered %d: %s" % (status, body[:300]))
        gone_s, seen = tf.wait_gone(sb, instance_id, cluster, deleted, "DELETE with the startd off", node)
        shadow = tf.shadow_log(sb, cluster, "Failed to kill starter")
        wait_for("the node's startd to be off", lambda: tf.node_slots(sb, node) == [], 120, sb, cluster)
        off = time.time() - deleted
        sb.run(["condor_on", "-addr", address, "-daemon", "startd"])
        address = None
        wait_for("the node's startd back", lambda: any(
            line.split()[-1] == "true" for line in tf.node_slots(sb, node)), 120, sb, cluster)
        back = time.time() - deleted
        cleaned = tf.node_keeps_nothing(sb, vm, cluster, 60)
        return {"delete_off": gone_s,
                "detail": "API %s; gone %.1f s; the shadow %s; startd off %.1f s, back %.1f s after the DELETE, "
                          "nothing of the instance left %.1f s later"
                          % (seen, gone_s, "had failed to kill the starter (it sleeps out the lease: RemoveX ended "
                             "it)" if shadow else "did not log 'Failed to kill starter'", off, back, cleaned)}
    finally:
        if address:  # failed while the startd was off: never leave the node without it
            sb.run(["condor_on", "-addr", address, "-daemon", "startd"], check=False)
            wait_for("the node's startd back", lambda: any(
                line.split()[-1] == "true" for line in tf.node_slots(sb, node)), 120)
        cleanup(sb, cluster)


def measure(sb, runs, shuffle, log):
    """Run each scenario `runs` times, interleaved (shuffle(list) gives each round's order). Returns the results:
    {"pending", "running", "delete_up", "delete_off": [seconds], "detail": [(scenario, run, text)],
    "errors": [text], "knobs": {...}}. Starts the API in the sandbox and stops it again."""
    res = {"pending": [], "running": [], "delete_up": [], "delete_off": [], "detail": [], "errors": [],
           "knobs": knobs(sb), "runs": runs}
    build = os.path.join(REPO, "tests", "images", "build-image")
    image = subprocess.run([build, "sleep"], stdout=subprocess.PIPE, check=True,
                           universal_newlines=True).stdout.split()[-1]
    sb.put_image(tf.IMAGE, image)  # ignores ACPI shutdown, like the tests' (a vacate takes MachineMaxVacateTime)
    clear_queue(sb)
    start_api(sb)
    try:
        for i in range(runs):
            for kind in shuffle(SCENARIOS):
                name = "bench-%s-%d" % (kind.replace("_", "-"), i)
                log("part 6: run %d/%d: %s" % (i + 1, runs, kind))
                t0 = time.time()
                try:
                    got = (starter_killed if kind == "starter" else delete_startd_off)(sb, name, res)
                except Exception as exc:  # a measurement: report the run, go on with the next
                    res["errors"].append("%s run %d: %s: %s" % (kind, i + 1, type(exc).__name__,
                                                                str(exc).splitlines()[0][:400]))
                    log("part 6: %s run %d failed: %s" % (kind, i + 1, res["errors"][-1]))
                    continue
                for key, value in got.items():
                    if key != "detail":
                        res[key].append(value)
                res["detail"].append((kind, i + 1, got["detail"]))
                log("part 6: %s run %d: %s (%.0f s)" % (kind, i + 1, got["detail"], time.time() - t0))
    finally:
        stop_api(sb)
    return res
