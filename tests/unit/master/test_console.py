"""Reading consoles on the master (condor_cloud/master/console.py): condor_tail (faked here; the real condor_tail
reads a real guest's console in tests/integration/test_pool.py) and cleaning guest output for terminals and
browsers."""

import subprocess

import pytest

from condor_cloud.core import errors
from condor_cloud.core.errors import CloudError
from condor_cloud.master import console


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
