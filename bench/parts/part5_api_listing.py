"""Part 5: the API backend's listing (CloudJobs.list) with 1000 jobs in the queue, against the bare schedd query."""

import json

from ..common import log
from ..pool import SUBMIT
from ..report import Row

NUMBER, NAME, TITLE, POOL = "5", "listing", "5. API listing", True
WHAT = "API: list instances with 1000 jobs vs bare htcondor2 query"


def run(ctx, sb):
    jobs = 1000
    rounds = 5 if ctx.args.quick else 20
    log("part 5: queueing %d held VM jobs" % jobs)
    sb.run(["condor_submit", "-terse"], user="alice", timeout=600,
           input=SUBMIT % ("bench-warm.qcow2", "hold = true\nMY.CloudOwner = \"alice\"\n", jobs))
    script = r"""
import json, random, sys, time
import htcondor2
from condor_cloud.master.jobs import CloudJobs, PROJECTION
schedd = htcondor2.Schedd()
api = CloudJobs()
out = {"api": [], "bare": [], "n_api": 0, "n_bare": 0}
rng = random.Random(1)
for _ in range(%d):
    for k in rng.sample(["api", "bare"], 2):
        t0 = time.perf_counter()
        if k == "api":
            out["n_api"] = len(api.list())
        else:
            out["n_bare"] = len(schedd.query(constraint=CloudJobs.constraint(None), projection=PROJECTION))
        out[k].append(time.perf_counter() - t0)
json.dump(out, sys.stdout)
""" % rounds
    data = json.loads(sb.run(["python3", "-c", script], timeout=600).stdout)
    ctx.rows.append(Row("5", "API listing (CloudJobs.list(), %d instances)" % data["n_api"], data["api"],
                        "bare htcondor2 schedd.query, same constraint + projection (%d ads)" % data["n_bare"],
                        data["bare"]))
    ctx.note("5", "Inside the sandbox (its python3 + python3-htcondor), %d held VM jobs in the queue, %d rounds "
             "of the API backend's listing (one schedd query with the projection, then ads -> InstanceInfo) vs "
             "the bare query, shuffled. HTTP/Flask overhead is not included." % (jobs, rounds))
