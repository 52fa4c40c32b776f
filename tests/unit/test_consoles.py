"""Serial consoles: the prepare hook's console log and its sandbox link, reading it back with condor_tail (faked
here; the real condor_tail reads a real guest's console in tests/integration/test_pool.py), and cleaning guest
output for terminals and browsers."""

import errno
import io
import os
import subprocess
import time

import pytest

from condor_cloud.master import console
from condor_cloud.node import console_log
from condor_cloud.core import errors
from condor_cloud.node.as_condor_cloud import prepare_hook
from condor_cloud.core.errors import CloudError

from support import job_ad, make_qcow2


def test_console_log_is_created_for_the_execute_account_and_linked_into_the_sandbox(tmp_path):
    logs, scratch = tmp_path / "consoles", tmp_path / "scratch"
    logs.mkdir()
    scratch.mkdir()
    note = console_log.prepare(str(logs), "7.0-0000abcd", str(scratch))
    log, link = logs / "7.0-0000abcd.log", scratch / "console.log"
    assert note == "console log %s, linked into the sandbox as console.log" % log
    assert os.stat(log).st_mode & 0o777 == 0o640 and os.stat(log).st_uid == os.getuid()
    assert os.path.samefile(log, link) and not os.path.islink(link)
    with open(log, "a") as f:        # what virtlogd appends is what the owner reads through the sandbox
        f.write("Booting Linux\n")
    assert link.read_text() == "Booting Linux\n"


def test_a_link_across_filesystems_leaves_an_explaining_console_log(tmp_path, monkeypatch):
    logs, scratch = tmp_path / "consoles", tmp_path / "scratch"
    logs.mkdir()
    scratch.mkdir()

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    note = console_log.prepare(str(logs), "7.0-0000abcd", str(scratch))
    assert note.startswith("no readable console:")
    assert (logs / "7.0-0000abcd.log").exists()
    text = (scratch / "console.log").read_text()
    assert "kept on the node in %s" % (logs / "7.0-0000abcd.log") in text
    assert "CLOUD_CONSOLE_DIR is not on the same filesystem as HTCondor's EXECUTE directory" in text


def test_a_missing_console_dir_does_not_fail_and_says_why(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    note = console_log.prepare(str(tmp_path / "nowhere"), "7.0-0000abcd", str(scratch))
    assert note.startswith("no readable console: the node could not create")
    assert "No such file or directory" in (scratch / "console.log").read_text()


def test_an_existing_log_or_symlink_is_never_reused(tmp_path):
    logs, scratch = tmp_path / "consoles", tmp_path / "scratch"
    logs.mkdir()
    scratch.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(str(target), str(logs / "7.0-0000abcd.log"))
    assert console_log.prepare(str(logs), "7.0-0000abcd", str(scratch)).startswith("no readable console")
    assert target.read_text() == "keep"


@pytest.mark.subprocess  # the hook runs qemu-img for real
def test_prepare_hook_links_the_console_and_a_failed_prepare_leaves_none(cloud, tmp_path, monkeypatch):
    make_qcow2(cloud.store / "demo.qcow2", "16M")
    scratch = cloud.scratch
    out = io.StringIO()
    assert prepare_hook.main([], io.StringIO(job_ad()), out, starter_pid=os.getpid()) == 0
    instance_id = [line.split('"')[1] for line in out.getvalue().splitlines() if line.startswith("CloudInstanceId")][0]
    assert os.path.samefile(str(cloud.consoles / (instance_id + ".log")), str(scratch / "console.log"))
    # a job that is held leaves no console log behind
    (scratch / "console.log").unlink()
    assert prepare_hook.main([], io.StringIO(job_ad(VMPARAM_vm_Disk='"missing.qcow2:vda:w"')), io.StringIO(),
                             starter_pid=os.getpid()) == 1
    assert os.listdir(str(cloud.consoles)) == [instance_id + ".log"] and not (scratch / "console.log").exists()


def test_prepare_prunes_old_logs_first_and_never_follows_a_symlink(tmp_path):
    logs, scratch, outside = tmp_path / "consoles", tmp_path / "scratch", tmp_path / "outside"
    for d in (logs, scratch, outside):
        d.mkdir()
    now = time.time()
    for name, age in (("1.0-0000aaaa.log", 10), ("2.0-0000bbbb.log", 1000), ("2.0-0000bbbb.log.1", 1000),
                      ("notes.txt", 1000), (".hidden.log", 1000)):
        (logs / name).write_text("x")
        os.utime(str(logs / name), (now - age, now - age))
    (outside / "keep.log").write_text("keep")
    os.symlink(str(outside / "keep.log"), str(logs / "3.0-0000cccc.log"))
    os.utime(str(logs / "3.0-0000cccc.log"), (now - 1000, now - 1000), follow_symlinks=False)
    console_log.prepare(str(logs), "7.0-0000abcd", str(scratch), keep=100)
    assert sorted(os.listdir(str(logs))) == [".hidden.log", "1.0-0000aaaa.log", "7.0-0000abcd.log", "notes.txt"]
    assert (outside / "keep.log").read_text() == "keep"     # the old symlink itself went, never its target
    assert console_log.prepare(str(logs), "8.0-0000abcd", "").startswith("console log")    # no keep: no pruning
    assert "1.0-0000aaaa.log" in os.listdir(str(logs))


def test_prune_never_raises(tmp_path):
    assert console_log.prune(str(tmp_path / "missing"), time.time(), 0) == []


def test_console_directory_is_writable_by_the_execute_account_alone():
    # virtlogd (root) follows whatever is at <id>.log: nobody but condor-cloud may create entries there.
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def read(path):
        with open(os.path.join(repo, path)) as f:
            return f.read()

    assert "%dir %attr(2750,condor-cloud,condor-cloud) %{_localstatedir}/log/%{srcname}/consoles" in \
        read("condor-cloud-node.spec")
    assert "d /var/log/condor-cloud/consoles 2750 condor-cloud condor-cloud -" in \
        read("packaging/condor-cloud-node.tmpfiles")
    assert "-d -m 2750 $(DESTDIR)$(LOCALSTATEDIR)/log/condor-cloud/consoles" in read("Makefile")


def test_clean_removes_escape_sequences_and_control_characters():
    raw = "\x1b[2J\x1b[1;31mred\x1b[0m \x1b]0;owned title\x07ok\r\nbell\x07 nul\x00 tab\tend\x1bc\n\x9b"
    assert console.clean(raw) == "red ok\nbell nul tab\tend\n"
    assert console.clean("plain\nlines\n") == "plain\nlines\n"


class FakeRun:
    def __init__(self, returncode=0, stdout=b"", stderr=b"", exc=None):
        self.result = subprocess.CompletedProcess([], returncode, stdout, stderr)
        self.exc = exc
        self.calls = []

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        if self.exc:
            raise self.exc
        return self.result


def test_tail_asks_condor_tail_for_the_jobs_output_file_only():
    run = FakeRun(stdout="boot ok \xe9\n".encode("latin-1"))
    assert console.tail(12, 0, 4096, run=run) == "boot ok \ufffd\n"
    assert run.calls == [["condor_tail", "-maxbytes", "4096", "12.0"]]


def test_tail_reports_condor_tails_reason():
    run = FakeRun(1, stderr=b"bob is not authorized for access to the starter for job 12.0\n")
    with pytest.raises(CloudError) as e:
        console.tail(12, 0, run=run)
    assert e.value.message == ("cannot read the console of job 12.0: 'bob is not authorized for access to the "
                               "starter for job 12.0'")


@pytest.mark.parametrize("exc,message", [
    (FileNotFoundError(), "condor_tail not found (is HTCondor installed here?)"),
    (subprocess.TimeoutExpired("condor_tail", 60), "condor_tail did not answer within 60 s"),
])
def test_tail_without_a_working_condor_tail(exc, message):
    with pytest.raises(CloudError) as e:
        console.tail(1, 0, run=FakeRun(exc=exc))
    assert e.value.message == message


@pytest.mark.parametrize("cluster,proc,max_bytes", [(1, 0, 0), (1, 0, (1 << 20) + 1), (-1, 0, 10), ("1", 0, 10),
                                                     (1, "0; rm", 10)])
def test_tail_refuses_bad_arguments_without_running_anything(cluster, proc, max_bytes):
    run = FakeRun()
    with pytest.raises(CloudError) as e:
        console.tail(cluster, proc, max_bytes, run=run)
    assert e.value.code == errors.BAD_REQUEST and run.calls == []
