"""Part 6 (issue 17): a lost VM (its starter killed) and a DELETE with the node's startd off, measured through the
API in the real-pool sandbox: the scenarios are in bench/failure_scenarios.py."""

from ..common import log
from ..report import Row

NUMBER, NAME, TITLE, POOL = "6", "failures", ("6. Failures in the real-pool sandbox: a lost VM and a DELETE with "
                                               "the node down"), True
WHAT = "failures: starter killed / DELETE with the startd off -> true state in the API"


def run(ctx, sb):
    from .. import failure_scenarios  # imports tests/integration/test_failures.py (and pytest)

    runs = 1 if ctx.args.quick else 3
    log("part 6: %d run(s) each of 'starter killed' and 'DELETE with the startd off', interleaved" % runs)
    res = failure_scenarios.measure(sb, runs, ctx.shuffled, log)
    for what, values, base_name, base in rows(res):
        ctx.rows.append(Row("6", what, values or None, base_name, base, show_runs=True,
                            note="not measured: every run failed (see part 6 below)"))
    for text in notes(res):
        ctx.note("6", text)


def rows(res):
    """(measurement, [seconds], baseline name, [baseline seconds]) for the results table."""
    lease = res["knobs"]["JobLeaseDuration"]
    lease_base = [float(lease)] if lease and lease.replace(".", "", 1).isdigit() else None
    lease_name = "JobLeaseDuration (job ad, CloudLease transform)" if lease_base else ""
    linger = [float(res["knobs"]["linger"])]
    linger_name = "RemoveX after (CloudJobs.remove linger)"
    return [
        ("VM's condor_starter killed (SIGKILL) -> API shows a true state (PENDING)", res["pending"], lease_name,
         lease_base),
        ("VM's condor_starter killed -> API shows RUNNING again (fresh domain + overlay)", res["running"],
         lease_name, lease_base),
        ("DELETE with the node's startd off -> gone from the API", res["delete_off"], linger_name, linger),
        ("DELETE with the node up, just after RUNNING again -> gone from the API", res["delete_up"], linger_name,
         linger),
    ]


def notes(res):
    """The 'how it was measured' text of part 6 (first item: the method; then the floor; then each run)."""
    k = res["knobs"]
    lines = [
        "Real-pool sandbox (one node: the sandbox's own startd), the API started in it (HTTPS, as installed), "
        "instances launched as alice with POST /api/instances (image: tests/images/build-image sleep, which ignores "
        "ACPI shutdown, as in tests/integration/test_failures.py), %d run(s) of each scenario, scenarios in "
        "shuffled order each round. Measured with that test module's helpers, imported by bench/failure_scenarios.py: "
        "(a) running_vm (API RUNNING and its domain running from its instance directory), SIGKILL to the "
        "condor_starter PID of instance.json, then wait_true_state (GET /api/instances/:id once a second until "
        "PENDING; condor_q and `condor-cloud instance show` must agree) and running_vm again (a new domain UUID "
        "and NumShadowStarts grown); then DELETE -> wait_gone (404 and not in GET /api/instances). "
        "(b) running_vm, `condor_off -addr <node's master> -daemon startd`, once the StartLog says 'shutdown "
        "graceful' DELETE -> wait_gone. Times are host clock from the kill / the DELETE to the first poll that saw "
        "the state: +-1 s resolution. Medians of few runs on a shared 2-core machine: measurements, no targets."
        % res["runs"],
        "What sets the floor (read from the sandbox, not assumed): JobLeaseDuration = %s s on the job (the "
        "CloudLease job transform, config.d/20condor_cloud_master.config): after a starter dies the startd "
        "answers the shadow's reconnect 'job not found', the shadow retries, sleeps out the rest of the lease and "
        "exits, and the schedd requeues the job (docs/DESIGN.txt, 'Failures: instances and nodes'); "
        "STARTER_HANDLES_ALIVES = %s (the startd's keep-alives, every lease/3); STARTER_UPDATE_INTERVAL = %s. "
        "A DELETE is condor_rm, and CloudJobs.remove (condor_cloud/master/jobs.py) force-removes (RemoveX) a "
        "job still queued %g s later: with the startd off the shadow cannot kill the starter and would wait out "
        "the lease, so RemoveX sets that floor. RUNNING again adds a negotiation cycle (sandbox "
        "NEGOTIATOR_INTERVAL = %s) and the start; the node's cleanup (CLOUD_CLEANUP_PERIOD = %s) removes the old "
        "domain and directory; MachineMaxVacateTime = %s."
        % (k["JobLeaseDuration"] or "?", k["STARTER_HANDLES_ALIVES"], k["STARTER_UPDATE_INTERVAL"], k["linger"],
           k["NEGOTIATOR_INTERVAL"], k["CLOUD_CLEANUP_PERIOD"], k["MachineMaxVacateTime"]),
    ]
    for kind, i, text in res["detail"]:
        lines.append("%s, run %d: %s" % ("starter killed" if kind == "starter" else "DELETE with the startd off",
                                         i, text))
    for err in res["errors"]:
        lines.append("error (run not counted): " + err)
    return lines

