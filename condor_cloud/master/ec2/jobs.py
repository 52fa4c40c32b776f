"""The job layer as the EC2 API needs it: instances_api.CloudJobs (the same schedd, the same ownership rule, the
same submit), plus what EC2 keeps about an instance, in its job ad:

  CloudTags         the instance's tags, a ClassAd list {"key1", "value1", "key2", ...}: set at launch
                    (TagSpecification) and changed with CreateTags/DeleteTags by the API's account, which owns the
                    job; NOT in PROTECTED_JOB_ATTRS (that would stop the API's account too), refused at submit from
                    every other account (SUBMIT_REQUIREMENT CloudAttributes), and another user cannot edit a job
                    the API's account owns. Tags are job attributes: anybody who may run condor_q on the master
                    sees them, like an instance's name; they are not for secrets.
  CloudClientToken  RunInstances' ClientToken (idempotent launches)
  CloudReservation  the reservation id shared by the instances of one RunInstances

All three are trusted only on the API account's jobs (like CloudOwner). Terminated instances come from the
schedd's history for CLOUD_EC2_TERMINATED_SECONDS after they ended (EnteredCurrentStatus). User data is read back
(DescribeInstanceAttribute userData) from the job's spool directory, which the schedd made for the API's account.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

from condor_cloud.master.jobs import PROJECTION, CloudJobs, InstanceInfo, ad_value, info_from_ad
from condor_cloud.core.userdata import USER_DATA_FILE

log = logging.getLogger("condor_cloud.master.ec2")

EC2_PROJECTION = PROJECTION + ["CloudTags", "CloudClientToken", "CloudReservation", "RemoveReason", "CompletionDate"]
MAX_HISTORY = 2000


@dataclass
class Instance:
    info: InstanceInfo
    tags: Dict[str, str] = field(default_factory=dict)
    client_token: str = ""
    reservation: str = ""
    launched_by_api: bool = False   # the API's account owns the job: its Cloud* attributes are trusted
    finished: bool = False          # from the history: the job left the queue
    ended: Optional[int] = None     # when it entered its last status
    remove_reason: str = ""


def tags_of(ad):
    """{key: value} of a CloudTags list (pairs); {} when absent or malformed."""
    try:
        value = ad.get("CloudTags") if hasattr(ad, "get") else None
    except Exception:
        return {}
    if not isinstance(value, (list, tuple)) or len(value) % 2 or not all(isinstance(v, str) for v in value):
        return {}
    return dict(zip(value[0::2], value[1::2]))


def _has(ad, name):
    try:
        return ad.get(name) is not None
    except Exception:   # an expression that does not evaluate
        return True


def tags_expression(tags):
    """The CloudTags value for {key: value}; every string is checked by plain_literal."""
    from condor_cloud.master.jobs import plain_literal

    items = []
    for key, value in tags.items():
        items += [plain_literal(key), plain_literal(value)]
    return "{%s}" % ",".join(items)


class Ec2Jobs(CloudJobs):
    def _instance(self, ad, finished=False):
        info = info_from_ad(ad, self.api_account)
        if info is None:
            return None
        by_api = ad_value(ad, "Owner", str, "") == self.api_account
        inst = Instance(info=info, launched_by_api=by_api, finished=finished,
                        ended=ad_value(ad, "EnteredCurrentStatus", int), remove_reason=ad_value(ad, "RemoveReason", str, ""))
        if by_api:
            inst.tags = tags_of(ad)
            if not _has(ad, "CloudTags") and ad_value(ad, "CloudName", str):
                inst.tags = {"Name": info.name}      # launched by the Deltacloud API (or the CLI) with a name
            inst.client_token = ad_value(ad, "CloudClientToken", str, "")
            inst.reservation = ad_value(ad, "CloudReservation", str, "")
        return inst

    def instances(self, owner, terminated_window=None, extra=None, now=None):
        """owner's instances: the queue's, plus (terminated_window seconds) those that left it that recently.
        extra: more constraint (ClassAd text built from checked values). Sorted by job id."""
        constraint = self.constraint(owner) + (" && (%s)" % extra if extra else "")
        schedd = self._schedd()
        ads = self._call("listing instances", schedd.query, constraint=constraint, projection=EC2_PROJECTION)
        found = {}
        for ad in ads:
            inst = self._instance(ad)
            if inst:
                found[inst.info.id] = inst
        if terminated_window:
            for inst in self.history(owner, terminated_window, extra, now):
                found[inst.info.id] = inst   # the history's record is the final one
        return sorted(found.values(), key=lambda i: (i.info.cluster, i.info.proc))

    def history(self, owner, window, extra=None, now=None):
        """Instances of owner that left the queue within the last window seconds (newest first)."""
        cutoff = int(now if now is not None else time.time()) - int(window)
        constraint = "%s && EnteredCurrentStatus >= %d%s" % (self.constraint(owner), cutoff,
                                                            " && (%s)" % extra if extra else "")
        schedd = self._schedd()
        # Read back from the newest record only as far as clearly older jobs: a job is recorded when it leaves the
        # queue, shortly after it entered its last status; one window of slack covers a slow removal.
        # (An ExprTree: htcondor2 takes a string for `since` only as a job id.)
        import classad2

        since = classad2.ExprTree("EnteredCurrentStatus < %d" % (cutoff - int(window)))
        try:
            ads = self._call("reading the schedd's history", schedd.history, constraint, EC2_PROJECTION,
                             MAX_HISTORY, since)
        except (TypeError, ValueError):  # bindings that do not take it
            ads = self._call("reading the schedd's history", schedd.history, constraint, EC2_PROJECTION,
                             MAX_HISTORY)
        found = []
        for ad in ads:
            inst = self._instance(ad, finished=True)
            if inst:
                found.append(inst)
        return found

    def launch(self, owner, image, profile, name, user_data, key, tags, client_token, reservation):
        # CloudTags is always set (maybe empty): only instances launched elsewhere show their name as a Name tag.
        attributes = {"CloudReservation": reservation, "CloudTags": [s for pair in tags.items() for s in pair]}
        if client_token:
            attributes["CloudClientToken"] = client_token
        info = self.submit(owner, image, profile, name, user_data, key, attributes=attributes)
        return Instance(info=info, tags=dict(tags), client_token=client_token, reservation=reservation,
                        launched_by_api=True)

    def set_tags(self, inst, tags):
        """Replace an API-launched instance's tags (the API's account owns the job)."""
        schedd = self._schedd()
        self._call("tagging an instance", schedd.edit, "%d.%d" % (inst.info.cluster, inst.info.proc), "CloudTags",
                   tags_expression(tags))
        inst.tags = dict(tags)

    def user_data(self, inst, max_bytes):
        """The user data an API-launched instance was given (bytes), b"" when none or no longer there."""
        if not inst.launched_by_api or inst.finished:
            return b""
        try:
            import htcondor2

            spool = htcondor2.param.get("SPOOL") or ""
        except Exception:
            return b""
        if not spool:
            return b""
        c, p = inst.info.cluster, inst.info.proc
        path = os.path.join(spool, str(c % 10000), str(p % 10000), "cluster%d.proc%d.subproc0" % (c, p),
                            USER_DATA_FILE)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return b""
        with contextlib.closing(os.fdopen(fd, "rb")) as f:
            import stat

            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return b""
            return f.read(max_bytes + 1)[:max_bytes]
