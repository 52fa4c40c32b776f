"""Issue 17 items 4 and 6: full disks, made for real on small tmpfs mounts (mounted and unmounted by each test).

Item 4: every write of the prepare hook is inside one failure path: a full instance (or cache) filesystem holds
the job with HookStatusCode 14 (no space), whichever write finds it, and leaves nothing of what prepare made.
Item 6: a full master disk is a clear error: the CLI's `user add`/`user passwd` print a message and exit 1, the
user file and the key store report errors.NO_SPACE (the API answers it with 507), and no temporary file stays;
what was stored before is intact."""

import errno
import io
import os
import subprocess

import classad2
import pytest
from click.testing import CliRunner

from condor_cloud.master import cli
from condor_cloud.core import errors, qemuimg
from condor_cloud.node import instance_dirs, seed
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.core.errors import CloudError
from condor_cloud.master.keys import KeyStore
from condor_cloud.master.users import UserFile

from support import ED25519, RSA, job_ad, make_qcow2

pytestmark = pytest.mark.subprocess  # mount/umount, qemu-img


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size, inodes=None) -> a fresh tmpfs at tmp_path/name; every mount is undone afterwards."""
    mounts = []

    def mount(name, size="1m", inodes=None):
        path = tmp_path / name
        path.mkdir()
        options = "size=%s,mode=0755" % size + (",nr_inodes=%d" % inodes if inodes else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        mounts.append(path)
        return path

    yield mount
    failed = []
    for path in reversed(mounts):
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)   # still undone, and the test fails
            failed.append(str(path))
    assert not failed, "files left open on %s" % failed


def fill(path):
    """Fill the filesystem of directory path to the last block (a file named 'filler')."""
    fd = os.open(os.path.join(str(path), "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


# -- item 4: prepare on a full node -------------------------------------------------------------------------
@pytest.fixture
def node(cloud, tmpfs):
    """The cloud layout with CLOUD_INSTANCE_DIR on a 2 MiB tmpfs."""
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=b"DEMO-BASE" * 100)
    cloud.instances = tmpfs("instances-fs", "2m")
    cloud.write_config("CLOUD_INSTANCE_DIR = %s\n" % cloud.instances)
    return cloud


def run_prepare():
    out = io.StringIO()
    status = prepare_hook.main([], io.StringIO(job_ad()), out, starter_pid=os.getpid())
    return status, classad2.parseOne(out.getvalue())


def fill_before(monkeypatch, owner, name, path, after=False):
    """Make owner.name fill the filesystem of path before (or after) doing its work."""
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if not after:
            fill(path)
        result = real(*args, **kwargs)
        if after:
            fill(path)
        return result

    monkeypatch.setattr(owner, name, wrapper)


# Each write of prepare on the instance filesystem, found full: instance.json (first write, add_base, after the
# overlay, after the seed), the overlay (qemu-img), the seed.
WRITES = {
    "instance.json at create": lambda mp, path: fill(path),
    "instance.json recording the base": lambda mp, path: fill_before(mp, instance_dirs.Instance, "add_base", path),
    "the overlay (qemu-img)": lambda mp, path: fill_before(mp, qemuimg, "create_overlay", path),
    "instance.json after the overlay": lambda mp, path: fill_before(mp, qemuimg, "create_overlay", path, after=True),
    "the cloud-init seed": lambda mp, path: fill_before(mp, seed, "build_seed", path),
    "instance.json after the seed": lambda mp, path: fill_before(mp, seed, "build_seed", path, after=True),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_full_instance_filesystem_is_no_space_and_leaves_nothing(node, monkeypatch, write):
    WRITES[write](monkeypatch, node.instances)
    status, out = run_prepare()
    assert status == 1
    assert out["HookStatusCode"] == errors.NO_SPACE, out["HookStatusMessage"]
    assert "no space left" in out["HookStatusMessage"].lower()
    assert os.listdir(str(node.instances)) == ["filler"]          # no directory, no .instance.json.tmp
    assert os.listdir(str(node.consoles)) == [] and not (node.scratch / "console.log").exists()


def test_no_inodes_left_on_the_instance_filesystem_is_no_space(cloud, tmpfs):
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=b"DEMO-BASE" * 100)
    full = tmpfs("instances-fs", "2m", inodes=1)                   # the root directory takes the only one
    cloud.write_config("CLOUD_INSTANCE_DIR = %s\n" % full)
    status, out = run_prepare()
    assert status == 1 and out["HookStatusCode"] == errors.NO_SPACE
    assert out["HookStatusMessage"].startswith("cannot create instance directory %s/" % full)
    assert os.listdir(str(full)) == []


def test_no_inodes_left_on_the_cache_filesystem_is_no_space(cloud, tmpfs):
    # The first write there is the image's lock file: an OSError no module turns into a CloudError, so the hook's
    # one failure path must.
    make_qcow2(cloud.store / "demo.qcow2", "32M", data=b"DEMO-BASE" * 100)
    full = tmpfs("cache-fs", "64m", inodes=1)
    cloud.write_config("CLOUD_IMAGE_CACHE = %s\n" % full)
    status, out = run_prepare()
    assert status == 1 and out["HookStatusCode"] == errors.NO_SPACE, out["HookStatusMessage"]
    assert out["HookStatusMessage"].startswith("no space left on the node while waiting for or copying image "
                                               "'demo.qcow2' into the cache %s" % full)
    assert os.listdir(str(cloud.instances)) == []


def test_saving_instance_json_on_a_full_disk_keeps_the_old_one_and_no_temp_file(tmpfs):
    root = tmpfs("instances-fs", "1m")
    inst = instance_dirs.create(str(root), "1.0-0000beef", {"uuid": "u"}, instance_dirs.Starter(os.getpid(), 1, "/s"))
    before = (root / "1.0-0000beef" / "instance.json").read_bytes()
    fill(root)
    inst.meta["padding"] = "x" * 8192
    with pytest.raises(CloudError) as exc:
        inst.save()
    assert exc.value.code == errors.NO_SPACE
    assert sorted(os.listdir(str(root / "1.0-0000beef"))) == ["instance.json"]
    assert (root / "1.0-0000beef" / "instance.json").read_bytes() == before
    os.unlink(str(root / "filler"))


# -- item 6: a full master disk -------------------------------------------------------------------------------
@pytest.fixture
def master(cloud, tmpfs, mocker):
    """CLOUD_API_USERS and CLOUD_API_KEYS_DIR on one 1 MiB tmpfs, with a user and a key stored before it filled."""
    mocker.patch("condor_cloud.master.users.SCRYPT_N", 1024)
    fs = tmpfs("master-fs", "1m")
    cloud.users = fs / "users"
    cloud.keys = fs / "keys"
    cloud.write_config("CLOUD_API_USERS = %s\nCLOUD_API_KEYS_DIR = %s\n" % (cloud.users, cloud.keys))
    UserFile(str(cloud.users)).add("alice", "alice-password")
    KeyStore(str(cloud.keys)).add("alice", "laptop", ED25519)
    cloud.before = {p: (fs / p).read_bytes() for p in ("users", "keys/alice/laptop.pub")}
    fill(fs)
    cloud.fs = fs
    return cloud


def files_of(root):
    return sorted(os.path.relpath(os.path.join(d, n), str(root)) for d, _, names in os.walk(str(root)) for n in names)


def assert_intact(master):
    assert files_of(master.fs) == ["filler", "keys/alice/laptop.pub", "users", "users.lock"]   # no temp file
    assert {p: (master.fs / p).read_bytes() for p in master.before} == master.before


@pytest.mark.parametrize("command", [["user", "add", "bob", "--password-stdin"],
                                     ["user", "passwd", "alice", "--password-stdin"]])
def test_cli_user_commands_on_a_full_disk_say_so_and_exit_1(master, command):
    r = CliRunner().invoke(cli.main_group, command, input="a-new-password\n", catch_exceptions=False)
    assert r.exit_code == 1
    assert "Error: cannot save the user file %s (nothing was changed): its filesystem is full" % master.users \
        in r.output
    assert "Traceback" not in r.output
    assert_intact(master)


def test_user_file_on_a_full_disk_is_no_space_and_leaves_no_temp_file(master):
    with pytest.raises(CloudError) as exc:
        UserFile(str(master.users)).add("bob", "bob-password")
    assert exc.value.code == errors.NO_SPACE
    assert_intact(master)


@pytest.mark.parametrize("failing", [errno.ENOSPC, errno.EROFS])
def test_cli_user_add_turns_any_write_error_into_a_message(cloud, mocker, failing):
    # Whatever UserFile lets through (an OSError of a version that does not convert it): no traceback.
    cloud.write_config("CLOUD_API_USERS = %s\n" % (cloud.root / "users"))
    mocker.patch("condor_cloud.master.users.UserFile.add", side_effect=OSError(failing, os.strerror(failing)))
    r = CliRunner().invoke(cli.main_group, ["user", "add", "bob", "--password-stdin"], input="a-new-password\n",
                           catch_exceptions=False)
    assert r.exit_code == 1
    assert r.output.startswith("Error: cannot save the user file %s" % (cloud.root / "users"))
    assert ("its filesystem is full" in r.output) == (failing == errno.ENOSPC)


@pytest.mark.parametrize("owner", ["alice", "bob"])   # an existing key directory, and a new one
def test_key_store_on_a_full_disk_is_no_space_and_leaves_no_temp_file(master, owner):
    with pytest.raises(CloudError) as exc:
        KeyStore(str(master.keys)).add(owner, "desktop", RSA)
    assert exc.value.code == errors.NO_SPACE
    assert exc.value.message == ("the key was not saved: the server's key store is full; nothing was changed, "
                                 "try again later")
    assert str(master.fs) not in exc.value.message               # API clients see it: no server path
    assert_intact(master)                                        # (bob's new, empty directory may stay)
    assert [k.name for k in KeyStore(str(master.keys)).list("alice")] == ["laptop"]


def test_key_store_without_inodes_is_no_space(tmpfs):
    fs = tmpfs("keys-fs", "1m", inodes=1)
    with pytest.raises(CloudError) as exc:
        KeyStore(str(fs)).add("alice", "laptop", ED25519)
    assert exc.value.code == errors.NO_SPACE
    assert os.listdir(str(fs)) == []
