"""Instances as VM-universe jobs, through the htcondor2 bindings (never by parsing command output).

An instance is exactly the job a person would submit by hand (universe vm, vm_type kvm, vm_memory, vm_vcpus,
vm_disk = IMAGE:vda:w, executable = the instance's name). Every value that came from a user is validated against a
small alphabet first and passed as a ClassAd string literal; nothing is pasted into a submit description or libvirt
XML as text.

Who owns an instance is what the schedd authenticated, never a free attribute: the job's Owner, except for jobs
whose Owner is the API's own account (CLOUD_API_ACCOUNT), which launches for its users and records the user in
CloudOwner. The schedd refuses Cloud* attributes from every other account (config.d/20condor_cloud_master.config,
SUBMIT_REQUIREMENT CloudAttributes), so CloudOwner, CloudName, CloudProfile and CloudKeyName are trusted only on
the API account's jobs (see owner_of).

Instance ids are the job's GlobalJobId ('schedd#cluster.proc#qdate') made URL-safe: '#' -> '_'.
"""

import base64
import contextlib
import ipaddress
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import List, Optional

from condor_cloud.core import errors, images, userdata
from condor_cloud.master import console, quotas
from condor_cloud.core.errors import CloudError, shown

VM_UNIVERSE = 13
PROJECTION = ["ClusterId", "ProcId", "GlobalJobId", "QDate", "JobStatus", "Owner", "CloudOwner", "CloudProfile",
              "CloudImage", "CloudName", "CloudKeyName", "JobVMMemory", "JobVM_VCPUS", "VMPARAM_vm_Disk", "Cmd",
              "HoldReason", "JobStartDate", "EnteredCurrentStatus", "ChirpCloudAddresses",
              # what the job is charged against its owner's quota (quotas.size_of)
              "ConcurrencyLimits", "RequestCpus", "RequestMemory",
              # the negotiator's last word on an idle job (set_pending_reasons)
              "LastRejMatchReason", "LastRejMatchTime", "LastMatchTime", "AutoClusterId"]
DEFAULT_API_ACCOUNT = "condor-cloud-api"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_ID_RE = re.compile(r"([A-Za-z0-9.@-]{1,255})_([0-9]{1,10})\.([0-9]{1,10})_([0-9]{1,12})")
# What a ClassAd string literal here may contain: no quote, backslash, '$' (submit macros) or control characters.
_LITERAL_RE = re.compile(r"[A-Za-z0-9 @._+=:,/-]*")

PENDING, RUNNING, STOPPED = "PENDING", "RUNNING", "STOPPED"
# JobStatus: 1 idle, 2 running, 3 removed, 4 completed, 5 held, 6 transferring output, 7 suspended.
_STATES = {1: PENDING, 2: RUNNING, 3: STOPPED, 4: STOPPED, 5: PENDING, 6: STOPPED, 7: STOPPED}


class BackendError(CloudError):
    """HTCondor (the schedd or the collector) could not be reached or refused a request: HTTP 502."""

    def __init__(self, message):
        super().__init__(message, errors.INTERNAL)


class InstanceStateError(CloudError):
    """The action is not allowed in the instance's current state: HTTP 409 Conflict."""

    def __init__(self, message):
        super().__init__(message, errors.BAD_REQUEST)


class NoSuchInstance(CloudError):
    def __init__(self, instance_id):
        super().__init__("no instance %s" % shown(instance_id), errors.BAD_REQUEST)


# Failures that happen before the schedd does anything, so that one retry is safe: it refused the security session
# this process cached before it restarted (SECMAN:2004; HTCondor drops the session on the refusal), or the queue
# connection of a submit failed (src/python-bindings/htcondor2/schedd.cpp at v23.9.6, _schedd_submit: "Failed to
# connect to schedd.", raised before any job exists).
RETRY_ONCE = ("SECMAN:2004", "Failed to connect to schedd")


def condor_errors():
    """What the htcondor2 bindings raise when a daemon cannot be reached or refuses: in HTCondor 23.x RuntimeError
    (e.g. "Unable to locate local daemon") and IOError, i.e. OSError (a failed query or connection: schedd.cpp in
    src/python-bindings/htcondor2 at v23.9.6); htcondor2.HTCondorException where it exists (24.x and later)."""
    import htcondor2

    found = getattr(htcondor2, "HTCondorException", None)
    return (RuntimeError, OSError, found) if isinstance(found, type) else (RuntimeError, OSError)


def plain_literal(value):
    """A ClassAd string literal of a value that needs no escaping, else ValueError: the API checks every value
    before (defense in depth). Unlike node.jobad.classad_string, which escapes what a hook writes back."""
    if not isinstance(value, str) or not _LITERAL_RE.fullmatch(value):
        raise ValueError("refusing to put %s into a job attribute" % shown(value))
    return '"%s"' % value


def check_instance_name(name):
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise CloudError("instance name %s is not allowed: use 1-63 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit" % shown(name), errors.BAD_REQUEST)
    return name


def user_data_for_job(text, max_bytes):
    """User data as the APIs and the CLI take it (base64, whitespace ignored), checked with the rules the node applies
    (condor_cloud.core.userdata) and the API's size limit; returned as canonical base64, or '' for none."""
    raw = userdata.decode_user_data(text, max_bytes)
    return base64.b64encode(raw).decode("ascii") if raw else ""


# Job statuses an instance can be destroyed in: idle, running, held, suspended. Not removed (3: being destroyed),
# completed (4) or transferring output (6, ending).
DESTROYABLE = (1, 2, 5, 7)


def can_destroy(info):
    """True when the instance's job may be removed (the rule the APIs and the CLI share)."""
    return info.job_status in DESTROYABLE


def instance_id_of(global_job_id):
    """'master.example.org#12.0#1700000000' -> 'master.example.org_12.0_1700000000'."""
    parts = str(global_job_id).split("#")
    if len(parts) != 3:
        return None
    schedd = re.sub(r"[^A-Za-z0-9.@-]", "-", parts[0]) or "schedd"
    return "%s_%s_%s" % (schedd, parts[1], parts[2])


def parse_instance_id(instance_id):
    """(cluster, proc) of a well-formed instance id, else raise NoSuchInstance."""
    m = _ID_RE.fullmatch(instance_id or "")
    if not m:
        raise NoSuchInstance(instance_id)
    return int(m.group(2)), int(m.group(3))


def image_id(name):
    """The original driver's image id: SHA1 hex of the file name lower-cased with '.' -> '-'."""
    import hashlib

    return hashlib.sha1(name.lower().replace(".", "-").encode("utf-8")).hexdigest()


@dataclass
class Profile:
    id: str
    memory: int  # MiB
    cpus: int
    storage: Optional[int] = None  # GB, informational
    architecture: str = "x86_64"


@dataclass
class InstanceInfo:
    id: str
    cluster: int
    proc: int
    name: str
    owner: str
    image: str
    profile: str
    state: str
    job_status: int
    memory: Optional[int]
    cpus: Optional[int]
    keyname: str
    launch_time: Optional[int]
    start_time: Optional[int]
    hold_reason: str
    addresses: List[str] = field(default_factory=list)
    charged_cpus: int = 1          # vCPUs and MiB its owner's quota is charged (quotas.size_of)
    charged_memory: int = 1
    pending_reason: str = ""       # why it waits, when its owner's quota holds it (set_pending_reasons)
    no_room_reason: str = ""       # why it waits, when no node had room at the last negotiation (same)
    rejected: str = ""             # the negotiator's last rejection of this idle job, if still current
    autocluster: Optional[int] = None

    @property
    def image_id(self):
        return image_id(self.image) if self.image else ""


def ad_value(ad, name, kind, default=None):
    """ad[name] as kind (str or int), or default: lenient, because the API shows every job in the queue whatever its
    ad holds (a node's hook uses node.jobad.get, which is strict and refuses a malformed job instead)."""
    try:
        value = ad.get(name, default) if hasattr(ad, "get") else default
    except Exception:  # an expression that does not evaluate
        return default
    if value is None:
        return default
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return default
    return value if isinstance(value, str) else default


def _addresses(ad):
    found = []
    for attr in ("ChirpCloudAddresses",):
        for item in ad_value(ad, attr, str, "").replace(",", " ").split():
            try:
                address = str(ipaddress.ip_address(item))
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return found


def owner_of(ad, api_account):
    """The cloud user who owns a job: CloudOwner on the API account's jobs, else the job's Owner (authenticated by
    the schedd). A CloudOwner on anybody else's job is ignored."""
    owner = ad_value(ad, "Owner", str, "")
    if owner == api_account:
        return ad_value(ad, "CloudOwner", str, "") or owner
    return owner


def info_from_ad(ad, api_account=DEFAULT_API_ACCOUNT):
    """An InstanceInfo for a VM job ad (also one submitted by hand), or None if the ad is unusable."""
    global_id = ad_value(ad, "GlobalJobId", str)
    instance_id = instance_id_of(global_id) if global_id else None
    cluster, proc = ad_value(ad, "ClusterId", int), ad_value(ad, "ProcId", int)
    if not instance_id or cluster is None or proc is None:
        return None
    status = ad_value(ad, "JobStatus", int, 0)
    trusted = ad_value(ad, "Owner", str, "") == api_account  # Cloud* attributes were set by the API itself
    # CloudImage: the schedd's transform CloudRank sets it from vm_disk at submit (and protects it afterwards)
    image = ad_value(ad, "CloudImage", str, "")
    if not image:
        disk = ad_value(ad, "VMPARAM_vm_Disk", str, "")
        image = disk.split(",")[0].split(":")[0].rsplit("/", 1)[-1] if disk else ""
    return InstanceInfo(
        id=instance_id, cluster=cluster, proc=proc,
        name=(trusted and ad_value(ad, "CloudName", str)) or ad_value(ad, "Cmd", str, "") or "%d.%d" % (cluster, proc),
        owner=owner_of(ad, api_account),
        image=image, profile=ad_value(ad, "CloudProfile", str, "") if trusted else "",
        state=_STATES.get(status, STOPPED), job_status=status,
        memory=ad_value(ad, "JobVMMemory", int), cpus=ad_value(ad, "JobVM_VCPUS", int),
        keyname=ad_value(ad, "CloudKeyName", str, "") if trusted else "",
        launch_time=ad_value(ad, "QDate", int), start_time=ad_value(ad, "JobStartDate", int),
        hold_reason=ad_value(ad, "HoldReason", str, "") if status == 5 else "",
        addresses=_addresses(ad), rejected=_current_rejection(ad, status),
        autocluster=ad_value(ad, "AutoClusterId", int), **_charged(ad))


def _current_rejection(ad, status):
    """The negotiator's reason for not matching an idle job at its last cycle ("no match found"), unless a match
    came after it (the schedd sets LastRejMatchReason/Time on a rejection, LastMatchTime on a match,
    schedd.cpp:7889, 11204)."""
    reason = ad_value(ad, "LastRejMatchReason", str, "")
    rejected_at = ad_value(ad, "LastRejMatchTime", int, 0)
    if status != 1 or not reason or rejected_at < ad_value(ad, "LastMatchTime", int, 0):
        return ""
    return reason.strip()


def _charged(ad):
    values = {}
    for attr in ("ConcurrencyLimits", "RequestCpus", "RequestMemory", "JobVM_VCPUS", "JobVMMemory"):
        try:
            values[attr] = ad.eval(attr) if hasattr(ad, "eval") and attr in ad else ad.get(attr)
        except Exception:  # an expression that does not evaluate: as if absent
            continue
    cpus, memory = quotas.size_of(values)
    return {"charged_cpus": cpus, "charged_memory": memory}


def running_use(infos, owner):
    """owner's running use (quotas.Use) among infos: the instances that hold a slot and their limits."""
    total = quotas.Use()
    for info in infos:
        if info.owner == owner and info.job_status in quotas.RUNNING_STATUSES:
            total = total + quotas.Use(1, info.charged_cpus, info.charged_memory)
    return total


def set_pending_reasons(infos, quota_of):
    """Fill in why each idle instance waits: pending_reason when its owner's quota holds it back ("over your instance
    quota (2 of 2 running)"), else no_room_reason when the negotiator found no node for it at its last cycle. infos
    must hold every instance of their owners (one listing); quota_of(owner) -> Quota. The negotiator tries one job
    per autocluster (jobs alike in what they ask for) and the schedd records its answer on that job only, so the
    answer stands for the autocluster's other jobs of the same owner. A rejection by a quota's concurrency limit is
    not a lack of room: the quota reason (computed here) speaks for it, or nothing once the quota has room."""
    rejections = {(i.owner, i.autocluster): i.rejected for i in infos
                  if i.rejected and i.autocluster is not None}
    quotas_by_owner, use_by_owner = {}, {}
    for info in infos:
        if info.job_status != 1 or not info.owner:
            continue
        if info.owner not in quotas_by_owner:
            quotas_by_owner[info.owner] = quota_of(info.owner)
            use_by_owner[info.owner] = running_use(infos, info.owner)
        size = quotas.Use(1, info.charged_cpus, info.charged_memory)
        info.pending_reason = quotas.pending_reason(quotas_by_owner[info.owner], use_by_owner[info.owner],
                                                    size) or ""
        rejected = info.rejected or rejections.get((info.owner, info.autocluster), "")
        if not info.pending_reason and rejected and quotas.rejection_of(rejected) is None:
            info.no_room_reason = ("no node has room for it now; it starts when one has (HTCondor's last "
                                   "negotiation: %s)" % shown(rejected, 200))
    return infos


def _this_account():
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@contextlib.contextmanager
def _input_files(files):
    """A private temporary directory (0700) holding files {name: bytes} (0600) while the schedd spools them;
    None when there are none. Removed afterwards: the schedd keeps its own copy until the job leaves the queue."""
    if not files:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="condor-cloud-launch-")
    try:
        for name, data in files.items():
            fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield directory
    except OSError as exc:
        code = errors.NO_SPACE if exc.errno == 28 else errors.INTERNAL
        raise CloudError("cannot stage the instance's input files: %s" % exc.strerror, code) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class CloudJobs:
    """The schedd side of instances. `schedd_factory()` returns an htcondor2.Schedd (tests pass a fake)."""

    def __init__(self, schedd_factory=None, api_account=DEFAULT_API_ACCOUNT, submitter=None):
        self._schedd_factory = schedd_factory
        self.api_account = api_account
        # The account the schedd will see as the job's Owner: this process's, unless a test says otherwise.
        self.submitter = submitter or _this_account()

    def _schedd(self):
        import htcondor2

        try:
            if self._schedd_factory is not None:
                return self._schedd_factory()
            return htcondor2.Schedd()
        except condor_errors() as exc:
            raise BackendError("cannot locate the HTCondor schedd: %s" % exc) from None

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except condor_errors() as exc:
            if not any(text in str(exc) for text in RETRY_ONCE):
                raise BackendError("HTCondor schedd error while %s: %s" % (what, exc)) from None
        # Typically the schedd restarted since this long-lived process last spoke to it (seen on the real pool: one
        # failed request per API worker after each schedd restart); one retry authenticates afresh.
        try:
            return fn(*args, **kwargs)
        except condor_errors() as exc:
            raise BackendError("HTCondor schedd error while %s: %s" % (what, exc)) from None

    def constraint(self, owner=None):
        """VM jobs owned by the cloud user owner (see owner_of), or every VM job for None."""
        base = "JobUniverse == %d" % VM_UNIVERSE
        if owner is None:
            return base
        api, user = plain_literal(self.api_account), plain_literal(owner)
        return "%s && ((Owner == %s && CloudOwner == %s) || (Owner == %s && Owner != %s))" % (base, api, user, user,
                                                                                             api)

    def list(self, owner=None):
        """Every instance of owner (None: every VM job), with ONE schedd query and a projection."""
        schedd = self._schedd()
        ads = self._call("listing instances", schedd.query, constraint=self.constraint(owner),
                         projection=PROJECTION)
        found = [info_from_ad(ad, self.api_account) for ad in ads]
        return sorted((i for i in found if i), key=lambda i: (i.cluster, i.proc))

    def get(self, instance_id, owner=None):
        """The instance with this id (visible to owner; None: any), or raise NoSuchInstance."""
        cluster, proc = parse_instance_id(instance_id)
        schedd = self._schedd()
        constraint = "%s && ClusterId == %d && ProcId == %d" % (self.constraint(owner), cluster, proc)
        ads = self._call("looking up an instance", schedd.query, constraint=constraint, projection=PROJECTION)
        for ad in ads:
            info = info_from_ad(ad, self.api_account)
            if info and info.id == instance_id and (owner is None or info.owner == owner):
                return info
        raise NoSuchInstance(instance_id)

    def submit(self, owner, image, profile, name, user_data="", key=None, attributes=None):
        """Queue one instance; return its InstanceInfo. Arguments must already be validated (see the API).

        Run as the API account (CLOUD_API_ACCOUNT), the job is launched for the cloud user owner (CloudOwner);
        run as anyone else, the job is that account's own and owner must be that account (the schedd refuses
        Cloud* attributes from it). User data and the SSH key travel as input files spooled to the schedd, never
        as job attributes: any schedd user can read any job's attributes. attributes: more Cloud* attributes
        (the EC2 API's), {name: str or list of str}, each string checked by plain_literal; API account only."""
        import htcondor2

        images.check_image_name(image)
        check_instance_name(name)
        description = {
            "universe": "vm",
            "vm_type": "kvm",
            "vm_memory": str(int(profile.memory)),
            "vm_vcpus": str(int(profile.cpus)),
            "request_cpus": str(int(profile.cpus)),
            "vm_disk": "%s:vda:w" % image,
            "vm_no_output_vm": "true",
            "executable": name,
        }
        if self.submitter == self.api_account:
            description["+CloudOwner"] = plain_literal(owner)
            description["+CloudProfile"] = plain_literal(profile.id)
            description["+CloudName"] = plain_literal(name)
            if key is not None:
                description["+CloudKeyName"] = plain_literal(key.name)
            for attr, value in sorted((attributes or {}).items()):
                if not re.fullmatch(r"Cloud[A-Z][A-Za-z]{1,40}", attr) or "+" + attr in description:
                    raise ValueError("refusing to set job attribute %s" % shown(attr))
                description["+" + attr] = (plain_literal(value) if isinstance(value, str) else
                                           "{%s}" % ",".join(plain_literal(v) for v in value))
        elif attributes:
            raise CloudError("only the API's account (%s) sets Cloud* attributes" % self.api_account,
                             errors.BAD_REQUEST)
        elif owner != self.submitter:
            raise CloudError("only the API's account (%s) launches instances for other users; %s can launch only "
                             "its own (or use the API)" % (self.api_account, self.submitter), errors.BAD_REQUEST)
        files = {}
        if user_data:
            files[userdata.USER_DATA_FILE] = base64.b64decode(user_data)
        if key is not None:
            files[userdata.SSH_KEYS_FILE] = (key.public_key + "\n").encode("ascii")
        schedd = self._schedd()
        with _input_files(files) as directory:
            if directory:
                description.update({"initialdir": directory, "transfer_input_files": ",".join(sorted(files)),
                                    "should_transfer_files": "YES", "when_to_transfer_output": "ON_EXIT",
                                    # spooled jobs would otherwise stay in the queue 10 days after they end
                                    "leave_in_queue": "false"})
            result = self._call("submitting an instance", schedd.submit, htcondor2.Submit(description), count=1,
                                spool=bool(directory))
            cluster = result.cluster()
            if directory:
                try:
                    self._call("sending the instance's user data and key to the schedd", schedd.spool, result)
                except BackendError:
                    self._call("removing a launch whose input files could not be sent", schedd.act,
                               htcondor2.JobAction.Remove, "%d.0" % cluster, reason="input files not sent")
                    raise
        try:
            schedd.reschedule()  # ask for a negotiation cycle now: a user is waiting for this instance
        except Exception:  # only a hint; the next regular cycle places the job anyway
            pass
        ads = self._call("reading back a new instance", schedd.query,
                         constraint="ClusterId == %d && ProcId == 0" % cluster, projection=PROJECTION)
        for ad in ads:
            info = info_from_ad(ad, self.api_account)
            if info:
                return info
        raise BackendError("the schedd accepted job %d.0 but does not show it" % cluster)

    def usage(self, since, until, now, user=None):
        """{user: usage.UserUsage} of the VM jobs of this schedd over [since, until) (one queue, one history query)."""
        from condor_cloud.master import usage

        return usage.read_usage(self._schedd(), since, until, now, self.api_account, user)

    def console(self, info, max_bytes, timeout=60):
        """The end of a running instance's console log, read with condor_tail as this process's account;
        InstanceStateError when it does not run, CloudError(TIMEOUT) when the node does not answer within timeout
        seconds (its starter is busy: it sleeps 30 s after starting a domain, VMProc::StartJob)."""
        if info.state != RUNNING:
            raise InstanceStateError("instance %s is %s: its console can be read only while it runs"
                                     % (info.id, info.state))
        return console.tail(info.cluster, info.proc, max_bytes, timeout=timeout)

    def destroy(self, info, reason, linger=20.0):
        """Destroy an instance: the one rule of when that is allowed (can_destroy), then remove()."""
        if not can_destroy(info):
            raise InstanceStateError("instance %s is %s: it cannot be destroyed now (it is already ending or gone)"
                                     % (info.id, info.state))
        return self.remove(info, reason, linger)

    def remove(self, info, reason, linger=20.0):
        """Remove an instance's job (condor_rm) and make that final; returns the escalation timer (or None).

        A removed job stays in the queue, shown STOPPED, until its shadow has stopped the VM; a shadow whose
        node does not answer (startd off, node down) waits for it up to the job lease. So linger seconds later
        a job still there is force-removed (condor_rm -forcex: JobAction.RemoveX, which the schedd applies only
        to jobs already removed: it drops the job and kills its shadow; the node still stops the VM, by the
        kill the shadow already sent, its own lease (36 s), or its cleanup when it returns). From a daemon
        timer, so neither a DELETE nor the CLI waits for it; without it (a process that exits first) the job
        lease alone bounds the removal. docs/DESIGN.txt, "Failures: instances and nodes"."""
        import threading

        import htcondor2

        job = "%d.%d" % (info.cluster, info.proc)
        schedd = self._schedd()
        result = self._call("destroying an instance", schedd.act, htcondor2.JobAction.Remove, job, reason=reason)
        if ad_value(result, "TotalSuccess", int, 1) > 0:
            if linger is None:
                return None

            def force_if_lingering():
                try:
                    self._schedd().act(htcondor2.JobAction.RemoveX, job,
                                       reason="%s (forced: still in the queue %gs after its removal)" % (reason,
                                                                                                        linger))
                except Exception:  # best effort: a job already gone is not found; the job lease bounds the rest
                    pass

            timer = threading.Timer(linger, force_if_lingering)
            timer.daemon = True
            timer.start()
            return timer
        if ad_value(result, "TotalJobsNotFound", int, 0) > 0:
            raise NoSuchInstance(info.id)
        if ad_value(result, "TotalPermissionDenied", int, 0) > 0:
            raise BackendError("the schedd refused to remove job %d.%d: permission denied (the API's account "
                               "can only remove jobs it submitted)" % (info.cluster, info.proc))
        if ad_value(result, "TotalBadStatus", int, 0) > 0:
            raise InstanceStateError("instance %s is already being destroyed" % info.id)
        raise BackendError("the schedd did not remove job %d.%d" % (info.cluster, info.proc))


def store_images(store, log=None):
    """{id: ImageInfo} of the store's launchable images; a name whose id collides with an earlier one is skipped."""
    found = {}
    for info in images.list_images(store):
        iid = image_id(info.name)
        if iid in found:
            if log:
                log.warning("image %s has the same id as %s (names differ only in case or '.'/'-'): not served",
                            info.name, found[iid].name)
            continue
        found[iid] = info
    return found
