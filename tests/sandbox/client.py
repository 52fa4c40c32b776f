"""What a user of the pool runs inside the sandbox: condor_submit, condor_q and condor_history, virsh; a job's
state, and what to show when a job does not get where a test expected.  Functions of a chroot.Chroot (or
Sandbox)."""
from pool import starter_log
from wait import wait_for

JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring", 7: "suspended"}


def submit(run, text, user="alice"):
    """condor_submit a submit description (text) as user; returns the cluster id."""
    p = run.run(["condor_submit", "-terse"], user=user, input=text)
    return int(p.stdout.strip().split(".")[0])


def condor_q(run, *args):
    return run.run(["condor_q"] + list(args)).stdout


def job_ad(run, cluster, proc=0):
    """The job's ad (condor_q, else condor_history) as a dict of raw ClassAd expression strings."""
    jid = "%d.%d" % (cluster, proc)
    text = run.run(["condor_q", jid, "-l"], check=False).stdout
    if not text.strip():
        text = run.run(["condor_history", jid, "-l", "-limit", "1"], check=False).stdout
    ad = {}
    for line in text.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            ad[k.strip()] = v.strip()
    return ad


def job_status(run, cluster, proc=0):
    """The job's status name (idle running removed completed held transferring suspended), None if unknown."""
    ad = job_ad(run, cluster, proc)
    return JOB_STATUS.get(int(ad["JobStatus"])) if "JobStatus" in ad else None


def hold_reason(run, cluster, proc=0):
    v = job_ad(run, cluster, proc).get("HoldReason")
    return v.strip('"') if v else None


def wait_job(run, cluster, states=("completed",), timeout=300, proc=0):
    """Wait until the job's status is one of states (names, see job_status); returns the status name; raises
    errors.WaitTimeout with the last status, the hold reason and the StarterLogs on timeout."""
    if isinstance(states, str):
        states = (states,)
    return wait_for("job %d.%d to be %s" % (cluster, proc, " or ".join(states)),
                    lambda: job_status(run, cluster, proc), timeout, accept=lambda st: st in states,
                    explain=lambda: diagnose(run, cluster, proc))


def diagnose(run, cluster=None, proc=0):
    """What a failed wait shows: the job's hold reason (with a cluster) and the pool's StarterLogs."""
    held = "HoldReason=%s\n" % hold_reason(run, cluster, proc) if cluster is not None else ""
    return held + "StarterLog:\n" + starter_log(run)


def virsh(run, *args, check=True):
    """virsh on the sandbox's libvirtd (qemu:///system); its standard output."""
    return run.run(["virsh", "-c", "qemu:///system"] + list(args), check=check).stdout
