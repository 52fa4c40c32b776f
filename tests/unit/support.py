"""Helpers shared by the unit tests, defined once: real small images, job ads and SSH public keys; the node hooks'
stand-ins (a starter process, the cleanup's hypervisor seam, recorded instances); the master API's fake schedd,
users and request headers. Fixtures that wrap these live in tests/unit/conftest.py (used by several directories) or
in a directory's own conftest.py (used there only)."""

import base64
import hashlib
import io
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Real public keys, defined once for both tiers (tests/public_keys.py).
from public_keys import ECDSA, ED25519, RSA  # noqa: E402,F401

SCRIPT = b"#!/bin/sh\necho \"hello from $(hostname)\" > /dev/console\n"


def b64(data):
    """User data as the API receives it: base64 text."""
    return base64.b64encode(data).decode("ascii")


def make_qcow2(path, size="16M", data=None, qemu_img="qemu-img"):
    """A real qcow2 image (optionally with `data` written at offset 0, through a raw temp file)."""
    raw = str(path) + ".raw"
    with open(raw, "wb") as f:
        f.truncate(_size(size))
        if data:
            f.write(data)
    subprocess.run([qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, str(path)], check=True)
    os.unlink(raw)
    return path


def _size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def job_ad(**attrs):
    """An old-syntax job ad as a hook reads it on stdin."""
    base = {"ClusterId": 7, "ProcId": 0, "GlobalJobId": '"master#7.0#1700000000"', "Owner": '"alice"',
            "JobUniverse": 13, "JobVMType": '"kvm"', "JobVMMemory": 256, "VMPARAM_vm_Disk": '"demo.qcow2:vda:w"'}
    base.update(attrs)
    return "".join("%s = %s\n" % (k, v) for k, v in base.items() if v is not None)


def make_api_store(tmp_path):
    """An image store for the API tests: staging/, a qcow2-looking demo.qcow2 and a raw other.img (not real images:
    the API only lists names and probes headers)."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "staging").mkdir()
    (store / "demo.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 1020)
    (store / "other.img").write_bytes(b"\0" * 2048)
    return store


# -- the node's hooks ---------------------------------------------------------------------------------------------
def run_prepare(ad_text, starter_pid=None):
    """The prepare hook's main() on `ad_text`, as the starter runs it: (exit status, its output as a ClassAd)."""
    import classad2

    from condor_cloud.node.as_condor_cloud import prepare_hook

    out = io.StringIO()
    status = prepare_hook.main([], io.StringIO(ad_text), out, starter_pid=starter_pid or os.getpid())
    return status, classad2.parseOne(out.getvalue()) if out.getvalue() else None


class Starter:
    """A stand-in starter process, alive while the instance is prepared and killed later."""

    def __init__(self):
        self.proc = subprocess.Popen(["sleep", "600"])
        self.pid = self.proc.pid

    def kill(self):
        self.proc.kill()
        self.proc.wait()


class FakeHypervisor:
    def __init__(self, fail=False):
        self.destroyed = []
        self.fail = fail

    def destroy(self, domain_uuid):
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        self.destroyed.append(domain_uuid)
        return True

    def running_domains(self):  # the cleanup asks which domains run and which files they use: none here
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        return []


class Hypervisor:
    """The cleanup's libvirt seam (libvirt_conn.Libvirt): destroys domains by UUID and lists the running ones
    (libvirt_conn.Domain) with the files of their disks. fail: libvirt unreachable; fail_destroy: it lists but
    cannot destroy."""

    def __init__(self, domains=(), fail=False, fail_destroy=False):
        self.fail = fail
        self.fail_destroy = fail_destroy
        self.domains = list(domains)
        self.destroyed = []

    def destroy(self, domain_uuid):
        if self.fail or self.fail_destroy:
            raise RuntimeError("libvirt unreachable")
        self.destroyed.append(domain_uuid)
        self.domains = [d for d in self.domains if d.uuid != domain_uuid]
        return True

    def running_domains(self):
        if self.fail:
            raise RuntimeError("libvirt unreachable")
        return list(self.domains)


def run_cleanup(hypervisor):
    """The cleanup cron's main() with `hypervisor` as its libvirt seam; returns what it prints for the startd."""
    from condor_cloud.node.as_condor import cleanup

    out = io.StringIO()
    assert cleanup.main([], None, out, hypervisor=hypervisor) == 0
    return out.getvalue()


def make_instance(cloud, instance_id, pid=None, start_time=None, scratch=None, job="master#7.0#1700000000"):
    """An instance directory as the prepare hook records it, made by the starter (pid, start_time, scratch);
    default: this test process, its real start time, the `cloud` fixture's scratch directory.

    The ONE place that knows how an instance records its starter."""
    from condor_cloud.core import processes
    from condor_cloud.node import instance_dirs

    pid = os.getpid() if pid is None else pid
    start_time = processes.process_start_time(pid) if start_time is None else start_time
    scratch = os.path.realpath(str(cloud.scratch)) if scratch is None else scratch
    instance_dirs.create(str(cloud.instances), instance_id, {"job": job, "owner": "alice", "uuid": "uuid-" + instance_id,
                                                         "mac": "02:00:00:00:00:07", "disks": []},
                         instance_dirs.Starter(pid, start_time, scratch))
    return instance_id


def present(cloud):
    """The instance directories on the node, sorted."""
    return sorted(os.listdir(str(cloud.instances)))


# A running domain's live XML with a VNC server (port, listen attribute, listen element's address).
VNC_DOMAIN = """<domain type='qemu' id='3'>
  <name>alice_7.0</name>
  <devices>
    <serial type='pty'><source path='/dev/pts/3'/></serial>
    <graphics type='vnc' port='%s' autoport='yes' listen='%s'>
      <listen type='address' address='%s'/>
    </graphics>
  </devices>
</domain>"""


# -- the master: command line, API (Deltacloud and EC2) -------------------------------------------------------------
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "root_": "admin-password"}


def make_key(comment="alice@laptop", seed=1):
    """A well-formed ED25519 public key made from `seed` (not a real key: for keys that must differ)."""
    import struct

    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes((seed + i) % 256 for i in range(32))
    return ("ssh-ed25519 %s %s" % (base64.b64encode(blob).decode(), comment)).strip()


def cli_runner(cloud):
    """`condor-cloud ARGS...` in-process (click's runner) over the `cloud` fixture's configuration."""
    from click.testing import CliRunner

    from condor_cloud.core.cli import main_group
    from condor_cloud.master import cli  # noqa: F401  (registers the master's commands)
    from condor_cloud.node import cli as node_cli  # noqa: F401  (registers `condor-cloud node ...`)

    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_API_KEYS_DIR = %s\n" % (cloud.root / "users",
                                                                           cloud.root / "keys"))
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main_group, list(args), input=input, catch_exceptions=False)

    return invoke


class FakeSchedd:
    """Just enough of htcondor2.Schedd: submit, query(constraint, projection), act."""

    def __init__(self):
        import classad2

        self.classad2 = classad2
        self.jobs = []
        self.submitted = []
        self.acts = []
        self.queries = []
        self.down = False
        self.next_cluster = 41
        self.spooled = []  # {name: bytes, "mode": {name: mode}} read from the submit's initialdir at spool time

    def _check(self):
        if self.down:
            import htcondor2

            raise htcondor2.HTCondorException("Failed to connect to schedd")

    def submit(self, description, count=0, spool=False, **kw):
        self._check()
        sub = dict(description)
        if spool:
            sub["<spool>"] = True
        self.submitted.append(sub)
        self.next_cluster += 1
        cluster = self.next_cluster
        ad = self.classad2.ClassAd()
        for key, value in sub.items():
            if key.startswith("MY."):
                ad[key[3:]] = self.classad2.ExprTree(value).eval()
        disk = sub["vm_disk"]
        ad.update({"ClusterId": cluster, "ProcId": 0, "JobUniverse": 13, "JobStatus": 1,
                   "GlobalJobId": "master.example.org#%d.0#1700000000" % cluster, "QDate": 1700000000,
                   "Owner": "condor-cloud-api", "JobVMMemory": int(sub["vm_memory"]),
                   "JobVM_VCPUS": int(sub["vm_vcpus"]), "VMPARAM_vm_Disk": disk, "Cmd": sub["executable"]})
        self.jobs.append(ad)

        class Result:
            def cluster(self_):
                return cluster

        Result.submitted = sub
        return Result()

    def spool(self, result):
        """Read the input files as the schedd would, from the initialdir, while the API still has them."""
        self._check()
        sub = result.submitted
        assert sub.get("<spool>"), "spool() without submit(spool=True)"
        files, modes = {}, {}
        for name in sub["transfer_input_files"].split(","):
            path = os.path.join(sub["initialdir"], name)
            modes[name] = os.stat(path).st_mode & 0o777
            with open(path, "rb") as f:
                files[name] = f.read()
        self.spooled.append({"files": files, "modes": modes, "dir_mode": os.stat(sub["initialdir"]).st_mode & 0o777})

    def query(self, constraint="True", projection=(), **kw):
        self._check()
        self.queries.append((constraint, list(projection)))
        expr = self.classad2.ExprTree(constraint)
        return [ad for ad in self.jobs if expr.eval(ad) is True]

    def act(self, action, job_spec, reason=None):
        self._check()
        self.acts.append((action, job_spec, reason))
        cluster, proc = (int(x) for x in job_spec.split("."))
        for ad in self.jobs:
            if ad["ClusterId"] == cluster and ad["ProcId"] == proc:
                ad["JobStatus"] = 3
                return self.classad2.ClassAd({"TotalSuccess": 1})
        return self.classad2.ClassAd({"TotalSuccess": 0, "TotalJobsNotFound": 1})

    def set_status(self, cluster, status):
        for ad in self.jobs:
            if ad["ClusterId"] == cluster:
                ad["JobStatus"] = status


_HASHES = {}


def cheap_hashes():
    """PASSWORDS hashed with scrypt N=1024 (once per run): cheap logins for the API tests."""
    from condor_cloud.master.users import hash_password

    if not _HASHES:
        _HASHES.update({name: hash_password(pw, n=1024) for name, pw in PASSWORDS.items()})
    return _HASHES


def make_api_env(tmp_path, mocker, monkeypatch):
    """The Deltacloud API's application over a store, a user file (PASSWORDS), a key store and a FakeSchedd:
    env.app, env.client (Flask's test client), env.users, env.keys, env.schedd, env.jobs, env.state."""
    from condor_cloud.master import users as users_mod
    from condor_cloud.master.api import create_app
    from condor_cloud.master.config import ApiSettings, parse_profiles
    from condor_cloud.master.api.state import StateStore
    from condor_cloud.master.jobs import CloudJobs
    from condor_cloud.master.keys import KeyStore
    from condor_cloud.master.users import UserFile

    class Env:
        pass

    e = Env()
    e.store = make_api_store(tmp_path)
    e.settings = ApiSettings(image_store=str(e.store), listen=("127.0.0.1", 3002), workers=1,
                             users_file=str(tmp_path / "users"), keys_dir=str(tmp_path / "keys"),
                             profiles=parse_profiles("small:512:1 medium:1024:2 large:2048:4"), max_user_data=1024,
                             realm="Condor Cloud", schedd="")
    # Cheap hashes (N=1024) keep the tests fast; verification reads the cost from each stored hash, and the
    # target cost is lowered to match, so no login upgrades them (tests/unit/master/test_users.py tests the upgrade).
    monkeypatch.setattr(users_mod, "SCRYPT_N", 1024)
    (tmp_path / "users").write_text("".join("%s:%s:%s\n" % (name, "admin" if name == "root_" else "user", h)
                                            for name, h in cheap_hashes().items()))
    e.users = UserFile(e.settings.users_file, group=None)
    e.keys = KeyStore(e.settings.keys_dir)
    e.schedd = FakeSchedd()
    e.factory = mocker.Mock(side_effect=lambda: e.schedd)
    e.jobs = CloudJobs(e.factory, submitter="condor-cloud-api")
    e.state = StateStore(str(tmp_path / "state"))
    e.app = create_app(settings=e.settings, users=e.users, keys=e.keys, jobs=e.jobs, state=e.state)
    e.client = e.app.test_client()
    return e


def auth(user, password=None):
    token = "%s:%s" % (user, password if password is not None else PASSWORDS[user])
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def xml(user="alice"):
    return dict(auth(user), Accept="application/xml")


def jsonh(user="alice"):
    return dict(auth(user), Accept="application/json")


def html(user="alice"):
    return dict(auth(user), Accept="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")


def image_id(name):
    return hashlib.sha1(name.lower().replace(".", "-").encode()).hexdigest()


DEMO_ID = image_id("demo.qcow2")


ORIGIN = "http://localhost"  # the Flask test client's own origin


def browser(origin=ORIGIN, site="same-origin", mode="navigate", dest="document"):
    """Headers a browser sends with a form submission of this site's own page."""
    headers = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers.update({"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest})
    return headers


def login(client, user="alice", password=None, **environ):
    """Log the test client in through the login form; return the session's CSRF token (read from a page)."""
    r = client.post("/api/login", data={"username": user, "password": password or PASSWORDS[user], "next": "/api"},
                    headers=browser(), environ_overrides=environ)
    assert r.status_code == 303, r.data
    page = client.get("/api/keys", headers=browser(origin=None), environ_overrides=environ).data.decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
