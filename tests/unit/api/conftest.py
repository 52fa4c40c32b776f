"""Fixtures for the API tests: a store, a user file, a key store and a fake schedd (constraints are evaluated
with the real classad2 library, so ownership filtering is tested for real)."""

import base64
import os

import pytest

from condor_cloud.api import create_app
from condor_cloud.api.config import ApiSettings, parse_profiles
from condor_cloud.instances_api import CloudJobs
from condor_cloud.keys import KeyStore
from condor_cloud.users import UserFile

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

    def _check(self):
        if self.down:
            import htcondor2

            raise htcondor2.HTCondorException("Failed to connect to schedd")

    def submit(self, description, count=0, **kw):
        self._check()
        sub = dict(description)
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

        return Result()

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
    from condor_cloud.users import hash_password

    if not _HASHES:
        _HASHES.update({name: hash_password(pw, n=1024) for name, pw in PASSWORDS.items()})
    return _HASHES


@pytest.fixture
def env(tmp_path, mocker):
    class Env:
        pass

    e = Env()
    e.store = tmp_path / "store"
    e.store.mkdir()
    (e.store / "staging").mkdir()
    (e.store / "demo.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 1020)
    (e.store / "other.img").write_bytes(b"\0" * 2048)
    e.settings = ApiSettings(image_store=str(e.store), listen=("127.0.0.1", 3002), workers=1,
                             users_file=str(tmp_path / "users"), keys_dir=str(tmp_path / "keys"),
                             profiles=parse_profiles("small:512:1 medium:1024:2 large:2048:4"), max_user_data=1024,
                             realm="Condor Cloud", schedd="")
    # Cheap hashes (N=1024) keep the tests fast; verification reads the cost from each stored hash.
    (tmp_path / "users").write_text("".join("%s:%s:%s\n" % (name, "admin" if name == "root_" else "user", h)
                                            for name, h in _cheap_hashes().items()))
    e.users = UserFile(e.settings.users_file, group=None)
    e.keys = KeyStore(e.settings.keys_dir)
    e.schedd = FakeSchedd()
    e.factory = mocker.Mock(side_effect=lambda: e.schedd)
    e.jobs = CloudJobs(e.factory)
    e.app = create_app(settings=e.settings, users=e.users, keys=e.keys, jobs=e.jobs)
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
