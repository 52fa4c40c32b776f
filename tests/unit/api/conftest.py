"""Fixtures for the API tests: a store, a user file, a key store and a fake schedd (constraints are evaluated
with the real classad2 library, so ownership filtering is tested for real)."""

import base64
import os

import pytest

from support import make_api_store

from condor_cloud.master.api import create_app
from condor_cloud.master.api.config import ApiSettings, parse_profiles
from condor_cloud.master.api.state import StateStore
from condor_cloud.master.jobs import CloudJobs
from condor_cloud.master.keys import KeyStore
from condor_cloud.master.users import UserFile

PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "root_": "admin-password"}


def make_key(comment="alice@laptop", seed=1):
    import struct

    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes((seed + i) % 256 for i in range(32))
    return ("ssh-ed25519 %s %s" % (base64.b64encode(blob).decode(), comment)).strip()


ED25519 = make_key()


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


def _cheap_hashes():
    from condor_cloud.master.users import hash_password

    if not _HASHES:
        _HASHES.update({name: hash_password(pw, n=1024) for name, pw in PASSWORDS.items()})
    return _HASHES


@pytest.fixture
def env(tmp_path, mocker, monkeypatch):
    class Env:
        pass

    e = Env()
    e.store = make_api_store(tmp_path)
    e.settings = ApiSettings(image_store=str(e.store), listen=("127.0.0.1", 3002), workers=1,
                             users_file=str(tmp_path / "users"), keys_dir=str(tmp_path / "keys"),
                             profiles=parse_profiles("small:512:1 medium:1024:2 large:2048:4"), max_user_data=1024,
                             realm="Condor Cloud", schedd="")
    # Cheap hashes (N=1024) keep the tests fast; verification reads the cost from each stored hash, and the
    # target cost is lowered to match, so no login upgrades them (tests/unit/test_users.py tests the upgrade).
    from condor_cloud.master import users as users_mod

    monkeypatch.setattr(users_mod, "SCRYPT_N", 1024)
    (tmp_path / "users").write_text("".join("%s:%s:%s\n" % (name, "admin" if name == "root_" else "user", h)
                                            for name, h in _cheap_hashes().items()))
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
    import hashlib

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
    import re

    r = client.post("/api/login", data={"username": user, "password": password or PASSWORDS[user], "next": "/api"},
                    headers=browser(), environ_overrides=environ)
    assert r.status_code == 303, r.data
    page = client.get("/api/keys", headers=browser(origin=None), environ_overrides=environ).data.decode()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
