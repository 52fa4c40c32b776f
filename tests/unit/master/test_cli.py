"""The master's commands (condor_cloud/master/cli.py): images (staging, checksum, atomic publish), instances, users,
users' access keys. `condor-cloud node ...`: tests/unit/node/test_cli.py."""

import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from condor_cloud.master import cli
from condor_cloud.master.jobs import CloudJobs

from support import ED25519, FakeSchedd, cli_runner


@pytest.fixture
def run(cloud):
    return cli_runner(cloud)


@pytest.fixture
def probe(mocker):
    return mocker.patch("condor_cloud.core.qemuimg.probe", return_value="qcow2")


def test_image_add_publishes_with_checksum(run, cloud, probe, tmp_path):
    src = tmp_path / "src.qcow2"
    data = b"QFI\xfb" + b"\0" * (9 << 20) + b"tail"
    src.write_bytes(data)
    r = run("image", "add", str(src), "--name", "demo.qcow2")
    assert r.exit_code == 0, r.output
    published = cloud.store / "demo.qcow2"
    assert published.read_bytes() == data
    digest = hashlib.sha256(data).hexdigest()
    assert (cloud.store / "demo.qcow2.sha256").read_text() == "%s  demo.qcow2\n" % digest
    assert oct(published.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(cloud.store / "staging") == []
    # Verified with qemu-img in staging/ before publishing, as a qcow2 because of the name.
    (path, name, expected) = probe.call_args.args[1:]
    assert os.path.dirname(path) == str(cloud.store / "staging") and name == "demo.qcow2" and expected == "qcow2"
    assert "sha256 " + digest in r.output
    # The store module sees it, checksum included.
    listed = json.loads(run("image", "list", "--json").output)
    assert listed == [{"name": "demo.qcow2", "id": hashlib.sha1(b"demo-qcow2").hexdigest(), "size": len(data),
                       "sha256": digest}]


def test_image_add_refuses_existing_unless_replace(run, cloud, probe, tmp_path):
    src = tmp_path / "a.img"
    src.write_bytes(b"1" * 1024)
    assert run("image", "add", str(src)).exit_code == 0
    r = run("image", "add", str(src))
    assert r.exit_code == 1 and "exists already" in r.output
    src.write_bytes(b"2" * 1024)
    assert run("image", "add", str(src), "--replace").exit_code == 0
    assert (cloud.store / "a.img").read_bytes() == b"2" * 1024
    assert hashlib.sha256(b"2" * 1024).hexdigest() in (cloud.store / "a.img.sha256").read_text()


def test_image_add_bad_image_leaves_nothing(run, cloud, mocker, tmp_path):
    from condor_cloud.core.errors import CloudError

    mocker.patch("condor_cloud.core.qemuimg.probe", side_effect=CloudError("image 'x.qcow2' is not a readable disk image"))
    src = tmp_path / "x.qcow2"
    src.write_bytes(b"junk")
    r = run("image", "add", str(src))
    assert r.exit_code == 1 and "not a readable disk image" in r.output
    assert sorted(os.listdir(cloud.store)) == ["staging"] and os.listdir(cloud.store / "staging") == []


def _store_is_empty(cloud):
    return sorted(os.listdir(cloud.store)) == ["staging"] and os.listdir(cloud.store / "staging") == []


def test_image_add_refuses_a_symlink_to_a_root_only_file(run, cloud, probe, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret\n")
    os.chmod(secret, 0o600)
    link = tmp_path / "innocent.img"
    os.symlink(str(secret), str(link))
    r = run("image", "add", str(link))
    assert r.exit_code == 1 and "is a symbolic link" in r.output and "only regular files" in r.output
    assert _store_is_empty(cloud) and not probe.called


def test_image_add_refuses_fifo_and_directory_without_hanging(run, cloud, probe, tmp_path):
    from condor_cloud.core.errors import CloudError

    fifo = tmp_path / "pipe.img"
    os.mkfifo(str(fifo))
    r = run("image", "add", str(fifo))          # O_NONBLOCK: opening a FIFO with no writer must not hang
    assert r.exit_code == 1 and "is not a regular file" in r.output
    directory = tmp_path / "dir.img"
    directory.mkdir()
    assert run("image", "add", str(directory)).exit_code != 0   # click refuses it already ...
    with pytest.raises(CloudError, match="is not a regular file"):   # ... and so does add_image itself
        cli.add_image(cli._settings(), str(directory), "dir.img")
    assert _store_is_empty(cloud) and not probe.called


def test_image_add_copies_from_the_descriptor_it_checked(run, cloud, probe, tmp_path, mocker):
    # The path is swapped for a symlink to a secret right after it was opened and checked (a race by whoever
    # owns the directory): what is published is still the file that was opened, never the secret.
    src = tmp_path / "disk.img"
    src.write_bytes(b"the image" * 1000)
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret" * 1000)
    real_open = cli._open_source

    def open_then_swap(source):
        opened = real_open(source)
        os.rename(source, str(tmp_path / "moved-away"))
        os.symlink(str(secret), source)
        return opened

    mocker.patch.object(cli, "_open_source", side_effect=open_then_swap)
    r = run("image", "add", str(src))
    assert r.exit_code == 0, r.output
    assert (cloud.store / "disk.img").read_bytes() == b"the image" * 1000


@pytest.mark.subprocess   # real qemu-img
@pytest.mark.parametrize("how", ["data_file", "backing_file"])
def test_image_add_refuses_an_image_that_names_a_host_file(run, cloud, tmp_path, how):
    import subprocess

    host_file = tmp_path / "host-file"
    host_file.write_bytes(b"\0" * 65536)
    src = tmp_path / "mapped.qcow2"
    if how == "data_file":
        args = ["-o", "data_file=%s" % host_file, str(src), "1M"]
        why = "has an external data file"
    else:
        args = ["-u", "-F", "raw", "-b", str(host_file), str(src), "1M"]
        why = "has a backing file"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2"] + args, check=True)
    r = run("image", "add", str(src))
    assert r.exit_code == 1 and "image 'mapped.qcow2' %s; images in the store must be standalone" % why in r.output
    assert _store_is_empty(cloud)


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a b", "x.sha256", "staging"])
def test_image_add_bad_names(run, probe, tmp_path, name):
    src = tmp_path / "ok.img"
    src.write_bytes(b"1")
    r = run("image", "add", str(src), "--name", name)
    assert r.exit_code == 1


def test_image_add_id_collision(run, cloud, probe, tmp_path):
    src = tmp_path / "a.b.img"
    src.write_bytes(b"1")
    assert run("image", "add", str(src)).exit_code == 0
    r = run("image", "add", str(src), "--name", "A-b.img")
    assert r.exit_code == 1 and "same API id" in r.output


def test_image_remove(run, cloud, mocker):
    (cloud.store / "old.img").write_bytes(b"x")
    (cloud.store / "old.img.sha256").write_text("0" * 64 + "\n")
    fake = FakeSchedd()
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    mocker.patch("condor_cloud.master.jobs.CloudJobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    r = run("image", "remove", "old.img")
    assert r.exit_code == 0, r.output
    assert not (cloud.store / "old.img").exists() and not (cloud.store / "old.img.sha256").exists()
    assert run("image", "remove", "old.img").exit_code == 1


def test_image_remove_refuses_when_pending_instances_need_it(run, cloud, mocker):
    from condor_cloud.master.jobs import Profile

    (cloud.store / "busy.img").write_bytes(b"x")
    fake = FakeSchedd()
    CloudJobs(lambda: fake, submitter="condor-cloud-api").submit("alice", "busy.img", Profile("small", 512, 1), "n1")
    mocker.patch("condor_cloud.master.jobs.CloudJobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    r = run("image", "remove", "busy.img")
    assert r.exit_code == 1 and "pending instance" in r.output
    assert run("image", "remove", "busy.img", "--force").exit_code == 0


def test_instance_commands(run, cloud, mocker, probe):
    (cloud.store / "demo.qcow2").write_bytes(b"x")
    fake = FakeSchedd()
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    from condor_cloud.master.keys import KeyStore

    KeyStore(str(cloud.root / "keys")).add("alice", "laptop", ED25519)
    r = run("instance", "launch", "demo.qcow2", "--owner", "alice", "--profile", "medium", "--name", "web",
            "--key", "laptop", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["owner"] == "alice" and created["hardware_profile"] == "medium" and created["state"] == "PENDING"
    assert fake.submitted[0]["MY.CloudKeyName"] == '"laptop"'
    assert fake.spooled[0]["files"] == {"ssh-authorized-keys": (ED25519 + "\n").encode()}
    listed = json.loads(run("instance", "list", "--json").output)
    assert [i["id"] for i in listed] == [created["id"]]
    shown = json.loads(run("instance", "show", created["id"], "--json").output)
    assert shown["name"] == "web"
    assert "web" in run("instance", "list").output
    r = run("instance", "destroy", created["id"])
    assert r.exit_code == 0 and len(fake.acts) == 1
    r = run("instance", "destroy", created["id"])
    assert r.exit_code == 1 and "STOPPED" in r.output
    r = run("instance", "show", "nope")
    assert r.exit_code == 1 and "no instance" in r.output


def test_instance_console(run, cloud, mocker):
    from condor_cloud.core.errors import CloudError
    from condor_cloud.master.jobs import Profile

    fake = FakeSchedd()
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    created = CloudJobs(lambda: fake, submitter="condor-cloud-api").submit("alice", "demo.qcow2", Profile("small", 512, 1), "web")
    tail = mocker.patch("condor_cloud.master.console.tail", return_value="\x1b]0;title\x07login: \x1b[1mroot\x1b[0m\n")
    r = run("instance", "console", created.id)
    assert r.exit_code == 1 and "is PENDING: its console can be read only while it runs" in r.output
    fake.set_status(created.cluster, 2)
    r = run("instance", "console", created.id, "--bytes", "100")
    assert r.exit_code == 0 and r.output == "login: root\n"
    tail.assert_called_with(created.cluster, 0, 100, timeout=60)
    r = run("instance", "console", "%d.0" % created.cluster, "--raw")      # by job id, as typed
    assert r.exit_code == 0 and r.output == "\x1b]0;title\x07login: \x1b[1mroot\x1b[0m\n"
    tail.side_effect = CloudError("cannot read the console of job 42.0: 'bob is not authorized'")
    r = run("instance", "console", "42.0")
    assert r.exit_code == 1 and "bob is not authorized" in r.output
    assert run("instance", "console", "42.0", "--bytes", "0").exit_code == 2


def test_instance_launch_errors(run, cloud, mocker):
    fake = FakeSchedd()
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    assert run("instance", "launch", "missing.img", "--owner", "alice").exit_code == 1
    (cloud.store / "demo.qcow2").write_bytes(b"x")
    r = run("instance", "launch", "demo.qcow2", "--owner", "alice", "--profile", "huge")
    assert r.exit_code == 1 and "no hardware profile" in r.output
    fake.down = True
    r = run("instance", "launch", "demo.qcow2", "--owner", "alice")
    assert r.exit_code == 1 and "schedd" in r.output
    assert fake.submitted == []


def test_user_commands(run, cloud, mocker):
    mocker.patch("condor_cloud.master.users.SCRYPT_N", 1024)
    r = run("user", "add", "alice", "--password-stdin", input="alice-password\n")
    assert r.exit_code == 0, r.output
    r = run("user", "add", "root_", "--admin", "--generate")
    assert r.exit_code == 0
    password = r.output.split("password: ")[1].strip()
    assert len(password) >= 16
    from condor_cloud.master.users import UserFile

    uf = UserFile(str(cloud.root / "users"), group=None)
    assert uf.authenticate("root_", password).is_admin
    assert [{k: u[k] for k in ("name", "role")} for u in json.loads(run("user", "list", "--json").output)] == [
        {"name": "alice", "role": "user"}, {"name": "root_", "role": "admin"}]
    r = run("user", "add", "alice", "--password-stdin", input="other-password\n")
    assert r.exit_code == 1 and "exists" in r.output
    r = run("user", "passwd", "alice", input="new-password-1\nnew-password-1\n")
    assert r.exit_code == 0
    assert uf.authenticate("alice", "new-password-1")
    assert run("user", "add", "bob", "--password-stdin", input="short\n").exit_code == 1
    assert run("user", "remove", "alice").exit_code == 0
    assert run("user", "remove", "alice").exit_code == 1


def test_instance_launch_for_someone_else_needs_the_api_account(run, cloud, mocker):
    fake = FakeSchedd()
    (cloud.store / "demo.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 1020)
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="carol"))
    r = run("instance", "launch", "demo.qcow2", "--owner", "alice")
    assert r.exit_code == 1 and "only the API's account (condor-cloud-api) launches instances for other users" \
        in r.output
    assert fake.submitted == []


# -- the CLI -----------------------------------------------------------------------------------------------------
@pytest.fixture
def knobs(cloud, tmp_path):
    from condor_cloud.master.users import UserFile, hash_password

    users = tmp_path / "users"
    users.write_text("alice:user:%s\n" % hash_password("alice-password", n=1024))
    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_EC2_ACCESS_KEYS = %s\n" % (users, tmp_path / "ec2" / "keys"))
    assert UserFile(str(users)).get("alice")
    return tmp_path / "ec2" / "keys"


def test_cli_create_list_delete(knobs):
    runner = CliRunner()
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "alice", "--json"])
    assert r.exit_code == 0, r.output
    created = json.loads(r.output)
    assert created["user"] == "alice" and len(created["secret"]) == 40
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "alice"])
    assert r.exit_code == 0 and "aws_secret_access_key = " in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "list", "alice"])
    assert r.exit_code == 0 and created["id"] in r.output and created["secret"] not in r.output
    listed = json.loads(runner.invoke(cli.main_group, ["user", "access-key", "list", "--json"]).output)
    assert len(listed) == 2 and all("secret" not in k for k in listed)
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", created["id"]])
    assert r.exit_code == 0 and "deleted" in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", created["id"]])
    assert r.exit_code == 1 and "no access key" in r.output
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice", "--all"])
    assert r.exit_code == 0 and "deleted 1 access key of alice" in r.output


def test_cli_refuses_unknown_users_and_bad_usage(knobs):
    runner = CliRunner()
    r = runner.invoke(cli.main_group, ["user", "access-key", "create", "mallory"])
    assert r.exit_code == 1 and "no user mallory" in r.output and not knobs.exists()
    r = runner.invoke(cli.main_group, ["user", "access-key", "delete", "alice"])
    assert r.exit_code == 1 and "either KEY_ID or --all" in r.output


# -- quotas and usage (issue 15) ---------------------------------------------------------------------------------
@pytest.fixture
def quota_run(run, cloud, mocker):
    """`run` with a pool-wide default of 2 instances, the overrides file in tmp_path, users alice and root_, and
    the negotiator's reconfig mocked (run.reconfig)."""
    from condor_cloud.master.users import hash_password

    (cloud.root / "users").write_text("alice:user:%s\nroot_:admin:%s\n" % (hash_password("alice-password", n=1024),
                                                                          hash_password("root-password1", n=1024)))
    cloud.quota_file = cloud.root / "quotas.config"
    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_API_KEYS_DIR = %s\nCLOUD_QUOTA_FILE = %s\n"
                       "CLOUD_QUOTA_INSTANCES = 2\n" % (cloud.root / "users", cloud.root / "keys", cloud.quota_file))
    run.reconfig = mocker.patch.object(cli, "_reconfig_negotiator")
    return run


def test_user_quota_writes_the_overrides_and_reconfigures_the_negotiator(quota_run, cloud):
    from condor_cloud.master import quotas

    r = quota_run("user", "quota", "alice", "--instances", "3", "--memory", "8G")
    assert r.exit_code == 0, r.output
    assert "quota of alice set: instances 3, vCPUs unlimited (default), memory 8 GiB" in r.output
    assert quotas.load(str(cloud.quota_file)).users == {"alice": {"instances": 3, "memory_mib": 8192}}
    assert "cloud_inst.alice_LIMIT = 3\n" in cloud.quota_file.read_text()
    assert oct(cloud.quota_file.stat().st_mode & 0o777) == "0o644"
    quota_run.reconfig.assert_called_once_with()
    r = quota_run("user", "quota", "alice", "--instances", "default", "--cpus", "unlimited")
    assert r.exit_code == 0 and "instances 2 (default), vCPUs unlimited, memory 8 GiB" in r.output
    assert quotas.load(str(cloud.quota_file)).users == {"alice": {"cpus": None, "memory_mib": 8192}}
    # without options: shown, nothing written or reconfigured
    r = quota_run("user", "quota", "alice", "--json")
    assert json.loads(r.output) == {"name": "alice", "quota": {"instances": 2, "cpus": None, "memory_mib": 8192},
                                    "overrides": ["cpus", "memory_mib"]}
    assert quota_run.reconfig.call_count == 2


def test_user_quota_says_when_the_reconfig_failed(quota_run, cloud):
    from condor_cloud.core.errors import CloudError

    quota_run.reconfig.side_effect = CloudError("condor_reconfig -daemon negotiator failed: Can't find address")
    r = quota_run("user", "quota", "alice", "--instances", "1")
    assert r.exit_code == 1
    assert "%s was written, but the negotiator was not reconfigured" % cloud.quota_file in r.output
    assert "Can't find address" in r.output and "run 'condor_reconfig'" in r.output
    assert "cloud_inst.alice_LIMIT = 1" in cloud.quota_file.read_text()


@pytest.mark.parametrize("args", [("Alice", "--instances", "1"), ("alice", "--memory", "1.5G"),
                                  ("alice", "--instances", "-1"), ("alice", "--cpus", "many"),
                                  ("a\nSTART = True", "--instances", "1")])
def test_user_quota_refuses_bad_values_and_names_and_writes_nothing(quota_run, cloud, args):
    r = quota_run("user", "quota", *args)
    assert r.exit_code == 1 and not cloud.quota_file.exists() and not quota_run.reconfig.called


def test_user_quota_warns_about_a_unix_only_user(quota_run, cloud):
    r = quota_run("user", "quota", "carol", "--instances", "1")
    assert r.exit_code == 0 and "carol is not a user of the API" in r.output


def test_reconfig_negotiator_runs_condor_reconfig(mocker):
    import subprocess

    from condor_cloud.core.errors import CloudError

    fake = mocker.patch.object(subprocess, "run", return_value=subprocess.CompletedProcess([], 0, "Sent\n"))
    cli._reconfig_negotiator()
    assert fake.call_args.args[0] == ["condor_reconfig", "-daemon", "negotiator"]
    fake.return_value = subprocess.CompletedProcess([], 1, "ERROR: Can't find address for negotiator\n")
    with pytest.raises(CloudError, match="Can't find address for negotiator"):
        cli._reconfig_negotiator()


def test_user_list_shows_each_users_effective_quota(quota_run, cloud):
    assert quota_run("user", "quota", "alice", "--memory", "4096").exit_code == 0
    rows = json.loads(quota_run("user", "list", "--json").output)
    assert rows == [{"name": "alice", "role": "user", "quota": {"instances": 2, "cpus": None, "memory_mib": 4096},
                     "overrides": ["memory_mib"]},
                    {"name": "root_", "role": "admin", "quota": {"instances": 2, "cpus": None, "memory_mib": None},
                     "overrides": []}]
    lines = quota_run("user", "list").output.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "INSTANCES", "VCPUS", "MEMORY"]
    assert lines[1].split() == ["alice", "user", "2", "unlimited", "4", "GiB*"]
    assert lines[2].split() == ["root_", "admin", "2", "unlimited", "unlimited"]


@pytest.fixture
def usage_schedd(quota_run, mocker):
    """A fake schedd whose history holds one finished 2-hour instance of alice's and a 1-hour one of bob's (a
    by-hand job), in November 2023."""
    import classad2

    fake = FakeSchedd()

    def ad(cluster, owner, api, hours):
        values = {"ClusterId": cluster, "ProcId": 0, "GlobalJobId": "m#%d.0#1" % cluster, "JobUniverse": 13,
                  "JobStatus": 4, "Owner": "condor-cloud-api" if api else owner, "JobStartDate": 1700000000,
                  "JobCurrentStartDate": 1700000000, "EnteredCurrentStatus": 1700000000 + hours * 3600,
                  "RemoteWallClockTime": hours * 3600.0, "LastRemoteWallClockTime": hours * 3600.0,
                  "JobVM_VCPUS": 1, "JobVMMemory": 1024}
        if api:
            values["CloudOwner"] = owner
        return classad2.ClassAd(values)

    done = [ad(7, "alice", True, 2), ad(8, "bob", False, 1)]
    fake.history_constraints = []

    def history(constraint=None, projection=(), **kw):
        fake.history_constraints.append(constraint)
        expr = classad2.ExprTree(constraint)
        return [a for a in done if expr.eval(a) is True]

    fake.history = history
    mocker.patch.object(cli, "_jobs", return_value=CloudJobs(lambda: fake, submitter="condor-cloud-api"))
    return fake


PERIOD = ("--since", "2023-11-01", "--until", "2023-12-01")


def test_usage_as_root_shows_everybody(quota_run, usage_schedd, mocker):
    mocker.patch.object(cli, "_caller", return_value="root")
    doc = json.loads(quota_run("usage", "--json", *PERIOD).output)
    assert [(u["user"], u["instance_hours"], u["memory_gib_hours"]) for u in doc["users"]] == [
        ("alice", 2.0, 2.0), ("bob", 1.0, 1.0)]
    assert doc["total"]["instance_hours"] == 3.0 and doc["total"]["instances"] == 2
    out = quota_run("usage", *PERIOD).output.splitlines()
    assert out[1].split() == ["USER", "INSTANCES", "RUNNING", "INSTANCE-HOURS", "VCPU-HOURS", "GIB-HOURS"]
    assert out[2].split() == ["alice", "1", "0", "2.00", "2.00", "2.00"]
    assert out[4].split() == ["(all", "users)", "2", "0", "3.00", "3.00", "3.00"]
    doc = json.loads(quota_run("usage", "--json", "--user", "bob", *PERIOD).output)
    assert [u["user"] for u in doc["users"]] == ["bob"]


def test_usage_of_anybody_else_shows_only_their_own(quota_run, usage_schedd, mocker):
    mocker.patch.object(cli, "_caller", return_value="bob")
    doc = json.loads(quota_run("usage", "--json", *PERIOD).output)
    assert [u["user"] for u in doc["users"]] == ["bob"] and doc["total"]["instance_hours"] == 1.0
    assert all('"bob"' in c for c in usage_schedd.history_constraints)     # asked the schedd for bob's only
    r = quota_run("usage", "--user", "alice", *PERIOD)
    assert r.exit_code == 1 and "you can see only your own usage (bob)" in r.output and "2.00" not in r.output


def test_usage_default_period_is_this_month_and_bad_dates_are_refused(quota_run, usage_schedd, mocker):
    from condor_cloud.master import usage

    mocker.patch.object(cli, "_caller", return_value="root")
    doc = json.loads(quota_run("usage", "--json").output)
    assert doc["since"] == usage.iso(usage.month_start(__import__("time").time()))
    for bad in (("--since", "last-week"), ("--since", "2023-12-01", "--until", "2023-11-01")):
        r = quota_run("usage", *bad)
        assert r.exit_code == 1 and ("invalid date" in r.output or "the period is empty" in r.output)
