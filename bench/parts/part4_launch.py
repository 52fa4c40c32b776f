"""Part 4 (issue 13): what a user waits for, through the API (HTTPS, as alice) and by hand (condor_submit), with
the image warm (cached on the node) and cold (a new name), on the real-pool sandbox with the shipped knobs:

  POST / condor_submit -> RUNNING (API state / condor_q JobStatus)
  -> the guest's first console line (the node's console log), with the phases from the node's own records:
     prepare hook start and end (instance.json "created", the overlay's mtime), the domain's start (libvirt's
     "starting up" line in QEMU's log, /var/log/libvirt/qemu/<domain>.log: the domain really started, unlike the
     console log, which the prepare hook creates itself), the first line, the test image's boot marker
  -> that line readable by its owner (GET /api/instances/:id/console until it answers it)
  -> the address in the API (public_addresses) / condor_q (ChirpCloudAddress)
  DELETE / condor_rm (once the starter can act: its fixed 30 s wait is over) -> the domain gone (virsh list),
  for a guest that ignores ACPI (image dhcp) and, through the API, for one that honours it (image acpi);
  the guest powers itself off (image acpi, shut down from inside by an ACPI press at a random point of the
  starter's status-poll cycle) -> the API shows it STOPPED or gone, condor_q shows the job completed.

Every run is one instance at a time; runs are interleaved in shuffled order. These are measurements: a target
missed is reported with the HTCondor code line that sets the floor, not failed.
"""

import base64
import datetime
import glob
import json
import os
import random
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

from ..common import REPO, log
from ..pool import MARKER, SUBMIT, shipped_knobs
from ..report import Row

NUMBER, NAME, TITLE, POOL = "4", "e2e", ("4. Launch to console, address and DELETE in the real-pool sandbox "
                                         "(API and by hand)"), True
WHAT = "launch: POST / condor_submit -> RUNNING, first console line, address; DELETE -> domain gone"

USER, PASSWORD, PORT = "alice", "alice-bench-password", 3002
INSTANCES = "/var/lib/condor-cloud/instances"
CONSOLES = "/var/log/condor-cloud/consoles"
QEMU_LOGS = "/var/log/libvirt/qemu"
TIMEOUT = 300
GUEST_IP = "CONDOR-CLOUD-GUEST-IP"   # the dhcp test image's line once it has its lease
WARM = "bench-launch-warm.qcow2"
ACPI = "bench-launch-acpi.qcow2"      # tests/images/build-image acpi: like dhcp, and it honours an ACPI shutdown

# The floors, where HTCondor 23.9.6 sets them (github htcondor/htcondor, tag v23.9.6; docs/DESIGN.txt, "Launch
# speed: the knobs and the floors").
FLOORS = [
    ("negotiation", "Matchmaker::negotiationTime (src/condor_negotiator.V6/matchmaker.cpp:1629; "
     "NEGOTIATOR_CYCLE_DELAY read at :1651, NEGOTIATOR_MIN_INTERVAL at :670) and Scheduler::timeout "
     "(src/condor_schedd.V6/schedd.cpp:1181, SCHEDD_MIN_INTERVAL)"),
    ("vm-gahp handshakes", "VMGahpServer (src/condor_starter.V6.1/vm_gahp_server.cpp): sleep(1) in "
     "command_commands :548, command_support_vms :587, command_async_mode_on :627, publishVMClassAd :1323/:1404 "
     "(+1 s per 2 KB of ad at :1391 unless VM_GAHP_SEND_ALL_CLASSAD = False), nowPending :1200, "
     "getPendingResult :1224 then sleep(2) per poll :1258"),
    ("the starter's fixed wait", "VMProc::StartJob (src/condor_starter.V6.1/vm_proc.cpp:664): sleep(30) right "
     "after the domain starts, blocking the starter (condor_tail for the console, the update hook for the "
     "address, condor_rm) until 'StartJob for VM succeeded' (:692)"),
    ("the console", "condor_tail asks the schedd for the starter (GET_JOB_CONNECT_INFO), which asks the startd; "
     "the startd knows the starter's address only from the starter's first job update "
     "(src/condor_startd.V6/Starter.cpp:790), sent STARTER_INITIAL_UPDATE_INTERVAL s after StartJob returns "
     "(job_info_communicator.cpp:929; 8 by default, 0 shipped); until then the schedd answers 'Failed to read "
     "address of starter' (schedd.cpp:15686) and condor_tail asks again every 2 s (sleep(2), "
     "src/condor_tools/tail.cpp:232)"),
    ("the address", "the update hook runs only after the starter's fixed wait, then with each starter update "
     "(the first STARTER_INITIAL_UPDATE_INTERVAL = 0 s after StartJob returns, then every STARTER_UPDATE_INTERVAL, "
     "src/condor_starter.V6.1/job_info_communicator.cpp:925-929), and the shadow writes what it brings into the "
     "schedd's queue on its own timer (SHADOW_QUEUE_UPDATE_INTERVAL, src/condor_schedd.V6/qmgr_job_updater.cpp:235; "
     "15 s shipped), which is where condor_q and the API read it"),
    ("DELETE", "the startd vacates the claim gracefully: VMProc::ShutdownGraceful -> StopVM (vm_proc.cpp:1112, "
     ":1210) -> VirshType::Shutdown, an ACPI virDomainShutdown (src/condor_vm-gahp/xen_type.linux.cpp:246), and "
     "the starter waits; it sees the VM stopped only at its next status poll (VMProc::CheckStatus, a timer of "
     "VM_STATUS_INTERVAL >= 30 s registered at vm_proc.cpp:685; 'Virtual machine is stopped' :792), and only "
     "then does the vm-gahp exit and destroy a domain still running (VMGahpServer::cleanup -> killVM, "
     "vm_gahp_server.cpp:173). A guest that honours ACPI is gone as soon as it has shut down; one that ignores "
     "it (image dhcp) runs until that poll: 0-30 s, plus the poll's round trip"),
    ("the guest's own power-off", "the starter learns of it only at its next status poll (VMProc::CheckStatus, "
     "every VM_STATUS_INTERVAL >= 30 s, vm_proc.cpp:685; clamped at VM_MIN_STATUS_INTERVAL, vm_proc.h), then the "
     "job exits and leaves the queue; the API shows what the queue shows"),
]


# -- the API, as a user: HTTPS from inside the sandbox's network namespace ---------------------------------
class Api:
    def __init__(self, sb):
        self.sb = sb
        self.context = ssl.create_default_context(cafile=sb.state["api"]["cafile"])
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        self.netns = sb.state.get("netns")

    def call(self, method, path, data=None, accept="application/json", timeout=60):
        """(status, headers, body) of one request; runs in a thread that joined the sandbox's namespace."""
        result = {}

        def body():
            try:
                if self.netns:
                    import ctypes

                    libc = ctypes.CDLL(None, use_errno=True)
                    fd = os.open("/run/netns/" + self.netns, os.O_RDONLY)
                    try:
                        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                            raise OSError(ctypes.get_errno(), "setns")
                    finally:
                        os.close(fd)
                headers = {"Accept": accept, "Authorization": self.auth}
                payload = None
                if data is not None:
                    from urllib.parse import urlencode

                    payload = urlencode(data).encode()
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                req = urllib.request.Request("https://127.0.0.1:%d%s" % (PORT, path), data=payload,
                                             headers=headers, method=method)
                try:
                    with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
                        result["value"] = (resp.status, dict(resp.headers), resp.read())
                except urllib.error.HTTPError as exc:
                    result["value"] = (exc.code, dict(exc.headers), exc.read())
            except BaseException as exc:
                result["error"] = exc

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def image_id(self, name):
        status, _, body = self.call("GET", "/api/images")
        ids = [i["id"] for i in json.loads(body)["images"] if i["name"] == name] if status == 200 else []
        if not ids:
            raise RuntimeError("image %s not in GET /api/images (%d)" % (name, status))
        return ids[0]


# -- what the node records ---------------------------------------------------------------------------------
def _utc(text, fmt):
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def _qemu_log_time(sb, domain, event):
    """Host-clock time (ms) of libvirt's last '<event>' line ('starting up', 'shutting down') in QEMU's log of
    domain, or None."""
    try:
        with open(sb.path("%s/%s.log" % (QEMU_LOGS, domain)), errors="replace") as f:
            stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\+0000: " + re.escape(event),
                                f.read(), re.M)
    except OSError:
        return None
    return _utc(stamps[-1], "%Y-%m-%d %H:%M:%S.%f") if stamps else None


def domain_started(sb, domain):
    """When the domain really started: libvirt's 'starting up' line."""
    return _qemu_log_time(sb, domain, "starting up")


def domain_stopped(sb, domain):
    """When the domain stopped, whoever stopped it: libvirt's 'shutting down' line."""
    return _qemu_log_time(sb, domain, "shutting down")


def starter_done(sb, cluster):
    """Host-clock time of the starter's 'StartJob for VM succeeded' for the job (ms resolution: the bench sets
    STARTER_DEBUG = D_SUB_SECOND; 1 s without), or None."""
    for path in glob.glob(sb.path("/var/log/condor/StarterLog*")):
        with open(path, errors="replace") as f:
            text = f.read()
        at = text.rfind("Starting a VM universe job with ID: %d.0" % cluster)
        if at < 0:
            continue
        m = re.search(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)(\.\d+)? .*StartJob for VM succeeded", text[at:], re.M)
        if m:
            return _utc(m.group(1), "%m/%d/%y %H:%M:%S") + float(m.group(2) or 0)
    return None


class NodeWatch(threading.Thread):
    """Polls the node's files for one job every 50 ms: the instance directory, its console log's first line and
    the boot marker, and the domain's name (virsh list)."""

    def __init__(self, sb, cluster):
        super().__init__(daemon=True)
        self.sb, self.cluster = sb, cluster
        self.inst = self.domain = self.first_line = None
        self.t, self.hook = {}, {}
        self.stop = threading.Event()

    def run(self):
        polls = 0
        while not self.stop.is_set() and "guest_ip" not in self.t:
            now = time.time()
            if self.inst is None:
                found = glob.glob(self.sb.path("%s/%d.0-*" % (INSTANCES, self.cluster)))
                self.inst = os.path.basename(found[0]) if found else None
            if self.inst:
                lines = self._console()
                if lines and "first_line" not in self.t:
                    self.t["first_line"] = now
                    self.first_line = lines.split("\n", 1)[0][:120]
                if MARKER in lines:
                    self.t.setdefault("marker", now)
                if GUEST_IP in lines:
                    self.t["guest_ip"] = now
                if "hook_end" not in self.hook:
                    self.hook = self.phases()
            if self.domain is None and polls % 10 == 0:
                names = self.sb.virsh("list", "--name", check=False).split()
                mine = [n for n in names if n.endswith("_%d.0" % self.cluster)]
                self.domain = mine[0] if mine else None
            polls += 1
            time.sleep(0.05)
        if "hook_end" not in self.hook:
            self.hook = self.phases()

    def _console(self):
        """The complete lines of the console log so far ('' before the guest's first newline)."""
        try:
            with open(self.sb.path("%s/%s.log" % (CONSOLES, self.inst)), errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text[:text.rfind("\n") + 1] if "\n" in text else ""

    def phases(self):
        """Host-clock times of the prepare hook's start and end, from the instance directory (read while the
        instance runs: the exit hook removes it)."""
        out = {}
        d = self.sb.path("%s/%s" % (INSTANCES, self.inst)) if self.inst else None
        try:
            with open(os.path.join(d, "instance.json")) as f:
                out["hook_start"] = json.load(f)["created"]
            out["hook_end"] = os.stat(os.path.join(d, "vda.qcow2")).st_mtime
        except (OSError, TypeError, KeyError, ValueError):
            pass
        return out


# -- one launch ----------------------------------------------------------------------------------------------
def _poll(what, fn, interval, end, stop=None):
    while time.time() < end and not (stop and stop.is_set()):
        value = fn()
        if value:
            return value
        time.sleep(interval)
    return None


def launch(sb, api, via, image, result, untimed=False, ending="remove"):
    """One instance from submit to domain gone; fills result (seconds since the submit) and returns it.
    untimed: only until the boot marker (filling the cache), then removed. ending: "remove" (DELETE / condor_rm)
    or "poweroff" (the guest, image acpi, shuts itself down on an ACPI press sent from the node with virsh, at a
    random point of the starter's 30 s status-poll cycle; API only)."""
    end = time.time() + TIMEOUT
    if via == "api":
        image_id = api.image_id(image)
        t0 = time.time()
        status, _, body = api.call("POST", "/api/instances", {"image_id": image_id, "hwp_id": "small",
                                                              "name": "bench-%d" % int(t0)})
        if status != 201:
            raise RuntimeError("POST /api/instances answered %d: %s" % (status, body[:300]))
        instance_id = json.loads(body)["instance"]["id"]
        cluster = int(instance_id.split("_")[-2].split(".")[0])
    else:
        t0 = time.time()
        cluster = sb.submit(SUBMIT % (image, "", 1), user=USER)
    result["submit_cmd"] = time.time() - t0
    node = NodeWatch(sb, cluster)
    node.start()
    seen = {}
    stop = threading.Event()

    def state():  # RUNNING and the address, as the user sees them
        while not stop.is_set() and time.time() < end and not ("running" in seen and "address" in seen):
            if via == "api":
                status, _, body = api.call("GET", "/api/instances/" + instance_id)
                inst = json.loads(body)["instance"] if status == 200 else {}
                running = inst.get("state") == "RUNNING"
                address = ", ".join(a["address"] for a in inst.get("public_addresses") or [])
            else:
                out = sb.run(["condor_q", "%d.0" % cluster, "-af", "JobStatus", "ChirpCloudAddress"],
                             check=False).stdout.split()
                running = bool(out) and out[0] == "2"
                address = out[1] if len(out) > 1 and out[1] != "undefined" else None
            now = time.time()
            if running:
                seen.setdefault("running", now)
            if address:
                seen.setdefault("address", now)
                seen.setdefault("address_value", address)
            time.sleep(0.25)

    consoles = []

    def console():  # the first line through the API, as soon as it answers it (Retry-After not waited out)
        if _poll("RUNNING", lambda: "running" in seen, 0.1, end, stop) is None:
            return
        while not stop.is_set() and time.time() < end:
            t = time.time()
            status, headers, body = api.call("GET", "/api/instances/%s/console" % instance_id, accept="text/plain")
            consoles.append((status, time.time() - t))
            if status == 200 and body.strip():
                seen["console_api"] = time.time()
                return
            time.sleep(0.5)

    threads = [threading.Thread(target=state, daemon=True)]
    if via == "api":
        threads.append(threading.Thread(target=console, daemon=True))
    for t in threads:
        t.start()
    try:
        wanted = () if untimed else ("running", "address") + (("console_api",) if via == "api" else ())
        _poll("the launch", lambda: "marker" in node.t and all(k in seen for k in wanted), 0.2, end)
        missing = [k for k in ("marker",) if k not in node.t] + [k for k in wanted if k not in seen]
        node.domain = node.domain or (_poll("domain", lambda: [n for n in sb.virsh(
            "list", "--name", check=False).split() if n.endswith("_%d.0" % cluster)], 0.5, time.time() + 5) or
            [None])[0]
        started = domain_started(sb, node.domain) if node.domain else None
        # DELETE once the starter can act (its StartJob, with the fixed wait, is over: StarterLog), so this
        # measures the removal itself.
        if not untimed:
            _poll("the starter's StartJob", lambda: starter_done(sb, cluster), 0.5, end)
        t_del = time.time()
        if ending == "poweroff":
            time.sleep(random.uniform(0, 30))
            sb.virsh("shutdown", node.domain)
            result.update(poweroff(sb, api, instance_id, cluster, node.domain))
            t_del = None
        elif via == "api":
            status, _, body = api.call("DELETE", "/api/instances/" + instance_id)
            if status not in (200, 202, 204):
                raise RuntimeError("DELETE answered %d: %s" % (status, body[:300]))
        else:
            sb.run(["condor_rm", "%d.0" % cluster])
        gone = _poll("the domain gone", lambda: node.domain not in sb.virsh("list", "--name", check=False).split(),
                     0.1, time.time() + 120)
        t_gone = time.time() if gone and t_del else None
    finally:
        stop.set()
        node.stop.set()
        for t in threads:
            t.join(70)
        node.join(5)
        cleanup(sb, cluster)
    phases = node.hook
    done = starter_done(sb, cluster)
    rel = {"running": seen.get("running"), "address": seen.get("address"), "console_api": seen.get("console_api"),
           "first_line": node.t.get("first_line"), "marker": node.t.get("marker"), "domain": started,
           "hook_start": phases.get("hook_start"), "hook_end": phases.get("hook_end"), "starter_done": done,
           "guest_ip": node.t.get("guest_ip")}
    result.update({k: (v - t0 if v else None) for k, v in rel.items()})
    result.update({"cluster": cluster, "delete": (t_gone - t_del) if t_gone else None, "missing": missing,
                   "stopped": domain_stopped(sb, node.domain) if node.domain else None,
                   "first_text": node.first_line, "consoles": consoles, "address_value": seen.get("address_value"),
                   "delete_after_domain": (t_del - started) if started and t_del else None})
    return result


def poweroff(sb, api, instance_id, cluster, domain, timeout=120):
    """After the guest was asked to power itself off: {"off_api": s, "off_q": s} from the domain's stop (QEMU's
    log) to the API showing the instance STOPPED or gone, and to condor_q showing the job completed (status 4 or
    out of the queue)."""
    seen, end = {}, time.time() + timeout
    while time.time() < end and not ("api" in seen and "q" in seen):
        if "api" not in seen:
            status, _, body = api.call("GET", "/api/instances/" + instance_id)
            if status == 404 or (status == 200 and json.loads(body)["instance"].get("state") != "RUNNING"):
                seen["api"] = time.time()
        if "q" not in seen:
            out = sb.run(["condor_q", "%d.0" % cluster, "-af", "JobStatus"], check=False).stdout.split()
            if not out or out[0] == "4":
                seen["q"] = time.time()
        time.sleep(0.25)
    stopped = domain_stopped(sb, domain)
    return {k: (seen[w] - stopped if w in seen and stopped else None) for k, w in (("off_api", "api"),
                                                                                    ("off_q", "q"))}


def cleanup(sb, cluster, timeout=120):
    """The job out of the queue (forced if it lingers) and its domain gone, before the next run."""
    def gone():
        return not sb.run(["condor_q", "%d.0" % cluster, "-af", "ClusterId"], check=False).stdout.strip()

    sb.run(["condor_rm", "%d.0" % cluster], check=False)
    if _poll("job gone", gone, 0.5, time.time() + timeout) is None:
        sb.run(["condor_rm", "-forcex", "%d.0" % cluster], check=False)
        _poll("job gone (forced)", gone, 0.5, time.time() + 60)
    _poll("domain gone", lambda: not [n for n in sb.virsh("list", "--name", check=False).split()
                                      if n.endswith("_%d.0" % cluster)], 0.5, time.time() + 60)


# -- the part --------------------------------------------------------------------------------------------------
def setup_api(sb):
    """The product's API in the sandbox, with alice."""
    sb.start_api({USER: PASSWORD}, port=PORT)
    return Api(sb)


def stop_api(sb):
    sb.stop_service("condor-cloud-api")


def run(ctx, sb):
    n = 1 if ctx.args.quick else 5
    image, acpi_image = subprocess.run([os.path.join(REPO, "tests", "images", "build-image"), "dhcp", "acpi"],
                                       stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout.split()
    sb.start_network("default")
    # D_SUB_SECOND: the StarterLog's times in ms, for when the starter's StartJob returns (a log format only).
    with shipped_knobs(sb, extra="CLOUD_NETWORK = network:default\nSTARTER_DEBUG = $(STARTER_DEBUG) D_SUB_SECOND\n") \
            as knobs:
        api = setup_api(sb)
        try:
            sb.put_image(WARM, image)
            sb.put_image(ACPI, acpi_image)
            log("part 4: untimed launches to fill the cache, then %d runs each of warm/cold x API/by hand, API with "
                "a guest that honours ACPI (DELETE) and API with a guest that powers itself off" % n)
            launch(sb, api, "hand", WARM, {}, untimed=True)
            launch(sb, api, "hand", ACPI, {}, untimed=True)
            runs, errors = {}, []
            combos = [(kind, via) for kind in ("warm", "cold") for via in ("api", "hand")]
            combos += [("acpi", "api"), ("poweroff", "api")]
            for i in range(n):
                for kind, via in ctx.shuffled(combos):
                    name = {"warm": WARM, "acpi": ACPI, "poweroff": ACPI}.get(
                        kind, "bench-launch-cold-%d-%s.qcow2" % (i, via))
                    if kind == "cold":
                        sb.put_image(name, image)  # a new name: not in the node's cache
                    t = time.time()
                    try:
                        res = launch(sb, api, via, name, {"kind": kind, "via": via},
                                     ending="poweroff" if kind == "poweroff" else "remove")
                    except Exception as exc:  # a measurement: report the run, go on with the next
                        errors.append("%s %s run %d: %s: %s" % (kind, via, i + 1, type(exc).__name__, exc))
                        log("part 4: " + errors[-1])
                        continue
                    runs.setdefault((kind, via), []).append(res)
                    log("part 4: %s %s run %d: %s (%.0f s)" % (kind, via, i + 1, brief(res), time.time() - t))
        finally:
            stop_api(sb)
    report(ctx, runs, errors, knobs, n)


def brief(res):
    keys = ("running", "hook_start", "domain", "first_line", "starter_done", "console_api", "guest_ip", "address")
    return ", ".join("%s %s" % (k, "%.1f" % res[k] if res.get(k) is not None else "-") for k in keys) + (
        "; removal -> domain gone %s" % ("%.1f s" % res["delete"] if res.get("delete") is not None else "-")) + (
        "; guest's power-off -> API %s, condor_q %s" % tuple("%.1f s" % res[k] if res.get(k) is not None else "-"
                                                              for k in ("off_api", "off_q"))
        if "off_api" in res else "") + (
        "; missing %s" % res["missing"] if res["missing"] else "")


def values(runs, key, minus=None):
    """[run[key] - run[minus]] of the runs that have both, or None."""
    out = [r[key] - (r[minus] if minus else 0.0) for r in runs
           if r.get(key) is not None and (not minus or r.get(minus) is not None)]
    return out or None


def report(ctx, runs, errors, knobs, n):
    for kind in ("warm", "cold"):
        console_limit = 10.0 if kind == "warm" else 11.0
        for via, submit in (("api", "POST"), ("hand", "condor_submit")):
            rs = runs.get((kind, via), [])
            label = "%s, %s" % ("API" if via == "api" else "by hand", kind)

            def row(what, vals, phase=False, **kw):
                what = ("&nbsp;&nbsp;&nbsp;&nbsp;%s, phase: %s" if phase else "%s: %s") % (label, what)
                ctx.rows.append(Row("4", what, vals, note="" if vals else "not measured: no run got that far "
                                    "(see part 4 below)", **kw))

            row("%s -> RUNNING (%s)" % (submit, "API state" if via == "api" else "condor_q JobStatus"),
                values(rs, "running"), limit=("<=", 3.0) if via == "api" else None)
            row("%s -> guest's first console line (node's console log)" % submit, values(rs, "first_line"),
                limit=("<=", console_limit))
            row("%s -> prepare hook starts (negotiation, claim, starter)" % submit, values(rs, "hook_start"),
                phase=True)
            row("prepare hook (instance dir -> overlay)", values(rs, "hook_end", "hook_start"), phase=True)
            row("hook's end -> domain started (hook exit, vm-gahp, XML script, libvirt; QEMU log 'starting up')",
                values(rs, "domain", "hook_end"), phase=True)
            row("domain started -> first console line (guest boot under TCG)", values(rs, "first_line", "domain"),
                phase=True)
            row("domain started -> the starter's StartJob returns (its fixed wait; StarterLog, D_SUB_SECOND)",
                values(rs, "starter_done", "domain"), phase=True)
            if via == "api":
                row("POST -> first console line readable through the API", values(rs, "console_api"),
                    base_name="POST -> the starter's StartJob returns", base=values(rs, "starter_done"))
                row("first console line readable through the API, after the starter's StartJob returns",
                    values(rs, "console_api", "starter_done"), limit=("<=", 2.0))
            row("%s -> address in %s" % (submit, "the API (public_addresses)" if via == "api" else
                                          "condor_q (ChirpCloudAddress)"), values(rs, "address"))
            row("domain started -> the guest has its DHCP lease (its console line)", values(rs, "guest_ip", "domain"),
                phase=True)
            row("the guest's lease -> address in %s" % ("the API" if via == "api" else "condor_q"),
                values(rs, "address", "guest_ip"), phase=True)
            row("%s -> domain gone (virsh list), sent after the starter's StartJob returned"
                % ("DELETE" if via == "api" else "condor_rm"), values(rs, "delete"), limit=("<=", 3.0))
    rs = runs.get(("acpi", "api"), [])
    ctx.rows.append(Row("4", "API, warm, guest honours ACPI (image acpi): DELETE -> domain gone (virsh list), sent "
                        "after the starter's StartJob returned", values(rs, "delete"), limit=("<=", 3.0),
                        note="" if values(rs, "delete") else "not measured: no run got that far"))
    rs = runs.get(("poweroff", "api"), [])
    for key, what in (("off_api", "the API shows it STOPPED or gone"), ("off_q", "condor_q shows the job completed")):
        ctx.rows.append(Row("4", "API, warm, guest powers itself off (image acpi, at a random point of the starter's "
                            "status-poll cycle): domain stopped (QEMU log 'shutting down') -> " + what,
                            values(rs, key), note="" if values(rs, key) else "not measured: no run got that far"))
    ctx.note("4", "Real single-host pool (tests/sandbox: HTCondor 23.9.6 from Debian 13, libvirt, QEMU under TCG: "
             "guest times are not KVM times), run with the shipped knobs (below), CLOUD_NETWORK = network:default "
             "(a libvirt network with DHCP in the sandbox's namespace), image tests/images/build-image dhcp (~15 MB: "
             "its first console line is its boot marker; it then reads its seed, asks for a DHCP lease, prints "
             "the address, keeps running and ignores ACPI). "
             "%d run(s) of each of warm/cold x API/by hand, and of API with image acpi (DELETE) and API with image "
             "acpi powering itself off, one instance at a time, in shuffled order, after two untimed launches that "
             "cache the warm and the acpi image; cold = a new image name (not in the node's cache). "
             "API: HTTPS as alice (POST /api/instances, hwp small; GET /api/instances/:id every 0.25 s; GET "
             "/api/instances/:id/console with Accept: text/plain from RUNNING on, every 0.5 s, not waiting out "
             "Retry-After, until it answers a line; DELETE). By hand: condor_submit as alice (vm_memory 128), "
             "condor_q every 0.25 s, condor_rm. The DELETE / condor_rm is sent once the starter can act (after "
             "its StarterLog says 'StartJob for VM succeeded', with ms since the bench sets STARTER_DEBUG = "
             "D_SUB_SECOND), so it measures the removal, not the starter's "
             "wait; it also waits for the address, so it falls at about the same point of the starter's 30 s "
             "status-poll cycle in every run (see the DELETE floor below): for a guest that ignores ACPI the removal "
             "times are one point of a range of roughly 0 to 30 s plus the poll's round trip. Image acpi "
             "(tests/images/build-image acpi) is the dhcp image plus a watcher of the ACPI power button that powers "
             "the guest off at once; for 'powers itself off' the ACPI press is sent with virsh shutdown on the node "
             "a random 0-30 s after StartJob returned, and the interval starts when the domain has stopped "
             "(libvirt's 'shutting down' line in QEMU's log). Times are host clock "
             "from the POST / the condor_submit: the node's files polled every 50 ms, QEMU's log line "
             "(ms), instance.json 'created' and the overlay's mtime." % n)
    ctx.note("4", "Knobs: the sandbox's own timing settings (tests/sandbox 99sandbox.config) are replaced by the "
             "shipped values for this part (bench/pool.py shipped_knobs: a config file after the sandbox's, "
             "condor_reconfig; in brackets the value the daemon that uses it then reports): "
             + "; ".join("%s %s -> %s [%s]" % k for k in knobs) + ".")
    ctx.note("4", "Where the floors are (HTCondor 23.9.6's code; docs/DESIGN.txt, 'Launch speed: the knobs and the "
             "floors'): " + "; ".join("%s: %s" % f for f in FLOORS) + ".")
    for (kind, via), rs in sorted(runs.items()):
        for i, r in enumerate(rs):
            statuses = {}
            for status, _ in r["consoles"]:
                statuses[status] = statuses.get(status, 0) + 1
            requests = "; console requests (status: count) %s, the slowest answered in %.1f s" % (
                statuses, max(d for _, d in r["consoles"])) if r["consoles"] else ""
            ctx.note("4", "%s %s run %d (job %d), seconds since the submit: %s; first line %r; address %s%s"
                     % (kind, via, i + 1, r["cluster"], brief(r), r["first_text"], r["address_value"], requests))
    for err in errors:
        ctx.note("4", "error (run not counted): " + err)
