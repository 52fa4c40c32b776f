"""Serial console logs on the node (condor_cloud/node/console_log.py): the log the prepare hook makes and its
sandbox link, pruning, and who may write the console directory. Reading them back on the master:
tests/unit/master/test_console.py."""

import errno
import os
import time

from condor_cloud.node import console_log

from support import REPO


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


def test_console_directory_is_writable_by_the_execute_account_and_its_group_only():
    # virtlogd (root) follows whatever is at <id>.log: nobody but condor-cloud and its group (whose one other member
    # is condor, the cleanup's account: packaging/condor-cloud-node.sysusers) may create entries there.

    def read(path):
        with open(os.path.join(REPO, path)) as f:
            return f.read()

    assert "%dir %attr(2770,condor-cloud,condor-cloud) %{_localstatedir}/log/%{srcname}/consoles" in \
        read("condor-cloud-node.spec")
    assert "d /var/log/condor-cloud/consoles 2770 condor-cloud condor-cloud -" in \
        read("packaging/condor-cloud-node.tmpfiles")
    assert "-d -m 2770 $(DESTDIR)$(LOCALSTATEDIR)/log/condor-cloud/consoles" in read("Makefile")
    members = [line.split() for line in read("packaging/condor-cloud-node.sysusers").splitlines()
               if line.startswith("m ") and line.split()[2] == "condor-cloud"]
    assert members == [["m", "condor", "condor-cloud"]]
