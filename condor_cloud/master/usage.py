"""Usage per user over a period: instances, instance-hours, vCPU-hours and memory-hours (issue 15).

From the schedd's job ads (queue and history) of VM jobs, nothing counted by us: HTCondor records every run.

What counts as an instance-hour: an hour of an instance's runs, where a run is the time between the schedd
starting the job's shadow (JobCurrentStartDate) and that shadow ending - exactly what HTCondor adds to the job's
RemoteWallClockTime, and what it bills a submitter for. It includes the PREPARE hook's staging and the guest's boot
on the node, and a suspended instance; not the time it waits idle (PENDING) or held. An instance started again (its
node lost, vacated) counts each run. Runs are clipped to the period [since, until); a running instance counts up
to now. vCPU-hours and memory-hours (GiB-hours) weigh each hour by the size the instance is charged for
(quotas.size_of: its ConcurrencyLimits weights, else the larger of the VM's and the slot's size).

What HTCondor keeps of each run (schedd.cpp add_shadow_birthdate, update_remote_wall_clock, v23.9.6):
JobCurrentStartDate (start of the latest run; kept over a reconnect), JobStartDate (the first run's start),
LastRemoteWallClockTime (the latest finished run's length), RemoteWallClockTime (all finished runs together),
ShadowBday (present while a shadow runs: that run is not in RemoteWallClockTime yet). So the latest run is exact;
earlier runs are known only as a total that lies between JobStartDate and JobCurrentStartDate, and when the period
starts or ends inside that span their time is shared out in proportion. (CompletionDate and EnteredCurrentStatus
are used only for a job without LastRemoteWallClockTime.)

History rotation: the schedd keeps finished jobs in $(SPOOL)/history, rotated at MAX_HISTORY_LOG bytes (default
20 MB) with MAX_HISTORY_ROTATIONS old files (default 2). Usage of jobs that have rotated out is lost: raise these
two knobs on the master (a VM job's history ad is a few kB) or save `condor-cloud usage --json` every period.
"""

import datetime
import re
from dataclasses import dataclass
from typing import Dict, Iterable

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError, shown
from condor_cloud.master import quotas

HOUR = 3600.0
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?(Z?)")
VM_UNIVERSE = 13
PROJECTION = ["ClusterId", "ProcId", "GlobalJobId", "QDate", "JobUniverse", "JobStatus", "Owner", "CloudOwner",
              "JobStartDate", "JobCurrentStartDate", "ShadowBday", "EnteredCurrentStatus", "CompletionDate",
              "RemoteWallClockTime", "LastRemoteWallClockTime", "ConcurrencyLimits", "RequestCpus", "RequestMemory",
              "JobVM_VCPUS", "JobVMMemory"]


@dataclass(frozen=True)
class Piece:
    """Seconds of running that lie within [start, end): all of it for a known run (seconds == end - start)."""
    start: float
    end: float
    seconds: float

    def within(self, since, until):
        """The seconds of this piece in [since, until), shared out in proportion for an estimate."""
        span = self.end - self.start
        if span <= 0 or self.seconds <= 0:
            return 0.0
        overlap = min(self.end, until) - max(self.start, since)
        return self.seconds * overlap / span if overlap > 0 else 0.0


@dataclass
class UserUsage:
    user: str
    instances: int = 0            # instances that ran at some time in the period
    instance_hours: float = 0.0
    vcpu_hours: float = 0.0
    memory_gib_hours: float = 0.0
    running: int = 0              # running now (and counted up to now)

    def as_dict(self):
        return {"user": self.user, "instances": self.instances, "instance_hours": round(self.instance_hours, 4),
                "vcpu_hours": round(self.vcpu_hours, 4), "memory_gib_hours": round(self.memory_gib_hours, 4),
                "running": self.running}


def _num(ad, attr):
    value = ad.get(attr)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def is_ongoing(ad):
    """The job's latest run has not ended in the schedd's books: a shadow exists (ShadowBday) or it runs."""
    return _num(ad, "ShadowBday") is not None or _num(ad, "JobStatus") in quotas.RUNNING_STATUSES


def pieces_of(ad, now):
    """The job's runs as Pieces (see the module docstring); [] for a job that never ran."""
    last_start = _num(ad, "JobCurrentStartDate") or _num(ad, "ShadowBday") or _num(ad, "JobStartDate")
    if not last_start:
        return []
    total = max(0.0, _num(ad, "RemoteWallClockTime") or 0.0)
    pieces = []
    if is_ongoing(ad):
        running = _num(ad, "JobStatus") in quotas.RUNNING_STATUSES
        end = now if running else (_num(ad, "EnteredCurrentStatus") or now)
        pieces.append(Piece(last_start, max(last_start, end), max(0.0, end - last_start)))
        # After a schedd restart the shadow is born again (ShadowBday) while the run goes on (JobCurrentStartDate
        # kept), and RemoteWallClockTime already holds this run up to the restart: not an earlier run's time.
        earlier = total - max(0.0, (_num(ad, "ShadowBday") or last_start) - last_start)
    else:
        length = _num(ad, "LastRemoteWallClockTime")
        if length is None:
            end = _num(ad, "CompletionDate") or _num(ad, "EnteredCurrentStatus") or last_start
            length = max(0.0, end - last_start)
        length = max(0.0, length)
        pieces.append(Piece(last_start, last_start + length, length))
        earlier = total - length
    if earlier > 0:
        first = _num(ad, "JobStartDate") or last_start
        if first >= last_start:          # inconsistent ad: put the time right before the latest run
            first = last_start - earlier
        pieces.append(Piece(first, last_start, min(earlier, last_start - first)))
    return pieces


def _key(ad):
    return ad.get("GlobalJobId") or (ad.get("ClusterId"), ad.get("ProcId"), ad.get("QDate"))


def compute_usage(queue_ads, history_ads, since, until, now, api_account=quotas.DEFAULT_API_ACCOUNT, user=None):
    """{user: UserUsage} over [since, until) (POSIX seconds) from VM job ads; a job in both lists (it left the
    queue between the two reads) counts once, from its history ad. user: only that user's jobs."""
    until = min(until, now)
    jobs = {}
    for ad in list(queue_ads) + list(history_ads):   # history last: its final ad wins
        if _num(ad, "JobUniverse") not in (None, VM_UNIVERSE):
            continue
        jobs[_key(ad)] = ad
    result: Dict[str, UserUsage] = {}
    for ad in jobs.values():
        owner = quotas.charged_owner(ad, api_account)
        if not owner or (user is not None and owner != user):
            continue
        seconds = sum(piece.within(since, until) for piece in pieces_of(ad, now))
        running = is_ongoing(ad) and _num(ad, "JobStatus") in quotas.RUNNING_STATUSES
        if seconds <= 0 and not running:
            continue
        entry = result.setdefault(owner, UserUsage(owner))
        cpus, memory = quotas.size_of(ad)
        hours = seconds / HOUR
        if seconds > 0:
            entry.instances += 1
        entry.instance_hours += hours
        entry.vcpu_hours += hours * cpus
        entry.memory_gib_hours += hours * memory / 1024.0
        entry.running += 1 if running else 0
    return result


def constraint(since, until, user=None, api_account=quotas.DEFAULT_API_ACCOUNT):
    """The schedd constraint of the VM jobs that may have run in [since, until) (also owned by user)."""
    text = "JobUniverse == %d && JobStartDate isnt undefined && JobStartDate < %d" % (VM_UNIVERSE, int(until))
    if user is not None:
        quotas.check_user_name(user)
        quotas.check_user_name(api_account)
        text += ' && (Owner == "%s" || (Owner == "%s" && CloudOwner == "%s"))' % (user, api_account, user)
    return text


def read_usage(schedd, since, until, now, api_account=quotas.DEFAULT_API_ACCOUNT, user=None):
    """compute_usage over the jobs of schedd (an htcondor2.Schedd): ONE queue query and ONE history query."""
    from condor_cloud.master.jobs import BackendError, condor_errors

    base = constraint(since, until, user, api_account)
    try:
        queue = schedd.query(constraint=base, projection=PROJECTION)
        # A finished job entered its final state when its last run ended: one that did so before since is out.
        history = schedd.history(constraint="%s && EnteredCurrentStatus >= %d" % (base, int(since)),
                                 projection=PROJECTION)
    except condor_errors() as exc:
        raise BackendError("HTCondor schedd error while reading usage: %s" % exc) from None
    return compute_usage([_plain(ad) for ad in queue], [_plain(ad) for ad in history], since, until, now,
                         api_account, user)


def _plain(ad):
    """A dict of an htcondor2 ClassAd's projected values (expressions evaluated)."""
    out = {}
    for attr in PROJECTION:
        if attr in ad:
            try:
                value = ad.eval(attr)
            except Exception:       # an attribute that does not evaluate is as good as absent here
                continue
            if isinstance(value, (str, int, float)):
                out[attr] = value
    return out


def totals(usages: Iterable[UserUsage]) -> UserUsage:
    """Everyone's usage added up (the 'all users' line)."""
    total = UserUsage("*")
    for entry in usages:
        total.instances += entry.instances
        total.instance_hours += entry.instance_hours
        total.vcpu_hours += entry.vcpu_hours
        total.memory_gib_hours += entry.memory_gib_hours
        total.running += entry.running
    return total


# --- The period -----------------------------------------------------------------------------------------------

def parse_date(text):
    """POSIX seconds of 'YYYY-MM-DD[THH:MM[:SS]]' in local time (a trailing Z: UTC); CloudError otherwise."""
    match = _DATE_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise CloudError("invalid date %s: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (local time; Z for UTC)"
                         % shown(text), errors.BAD_REQUEST)
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups()[:6])
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second,
                                   tzinfo=datetime.timezone.utc if match.group(7) else None)
    except ValueError as exc:
        raise CloudError("invalid date %s: %s" % (shown(text), exc), errors.BAD_REQUEST) from None
    return moment.timestamp()


def month_start(now):
    """POSIX seconds of the first of now's month, 00:00 local time (the default start of a period)."""
    local = datetime.datetime.fromtimestamp(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def period(since_text, until_text, now):
    """(since, until) of optional date texts: by default this month so far. CloudError for an empty period."""
    since = parse_date(since_text) if since_text else month_start(now)
    until = parse_date(until_text) if until_text else now
    if until <= since:
        raise CloudError("the period is empty: --until (%s) is not after --since (%s)" % (iso(until), iso(since)),
                         errors.BAD_REQUEST)
    return since, until


def iso(epoch):
    """UTC ISO 8601 text of POSIX seconds, as the API's other times."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
