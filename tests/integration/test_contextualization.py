"""Contextualization on the real pool: the prepare hook's NoCloud seed reaches the guest as a CD-ROM labelled
cidata, and the guest prints the user data it finds there (tests/images `seed` variant). By hand, user data is an
input file named user-data (docs/SUBMIT.txt); the API's launches spool the same file (tests/integration/
test_isolation.py)."""

import pytest

from helpers import console
from wait import wait_for

SUBMIT = """\
universe = vm
vm_type = kvm
executable = web-1
vm_memory = 256
vm_disk = seeded.qcow2:vda:w
vm_no_output_vm = true
transfer_input_files = user-data
queue
"""


def between(text, begin, end):
    return text.split(begin, 1)[1].split(end, 1)[0].strip() if begin in text and end in text else None


def write_user_data(sb, data):
    """alice's file ~/user-data (her submit description transfers it), readable by her only."""
    path = sb.path("/home/alice/user-data")
    with open(path, "wb") as f:
        f.write(data)
    sb.run(["chown", "alice:alice", "/home/alice/user-data"])
    sb.run(["chmod", "0600", "/home/alice/user-data"])


def test_guest_reads_its_user_data_from_the_seed(sandbox, test_images):
    sandbox.put_image("seeded.qcow2", test_images["seed"])
    user_data = "#cloud-config\nruncmd:\n - echo hello from condor cloud\n"
    write_user_data(sandbox, user_data.encode())
    cluster = sandbox.submit(SUBMIT, user="alice")

    def seed_shown():
        seen = console(sandbox, cluster)
        if "CONDOR-CLOUD-SEED-META-DATA-END" in seen or "CONDOR-CLOUD-SEED-MISSING" in seen:
            return seen
        if sandbox.job_status(cluster) == "held":
            pytest.fail("held: %s" % sandbox.hold_reason(cluster))
        return None

    seen = wait_for("the guest to print its seed", seed_shown, 300, explain=lambda: sandbox.diagnose(cluster))
    assert "CONDOR-CLOUD-SEED-MISSING" not in seen, seen
    assert between(seen, "CONDOR-CLOUD-SEED-USER-DATA-BEGIN", "CONDOR-CLOUD-SEED-USER-DATA-END") \
        .replace("\r", "") == user_data.strip()
    meta = between(seen, "CONDOR-CLOUD-SEED-META-DATA-BEGIN", "CONDOR-CLOUD-SEED-META-DATA-END")
    assert "local-hostname" in meta and "web-1" in meta and "instance-id" in meta
    sandbox.wait_job(cluster, ("completed",), timeout=240)


def test_bad_user_data_is_held_with_a_clear_reason(sandbox, test_images):
    sandbox.put_image("seeded.qcow2", test_images["seed"])
    write_user_data(sandbox, b"\xff\xfe binary junk")
    cluster = sandbox.submit(SUBMIT, user="alice")
    sandbox.wait_job(cluster, ("held",), timeout=180)
    reason = sandbox.hold_reason(cluster)
    assert "user data is neither UTF-8 text nor gzip" in reason, reason
    sandbox.run(["condor_rm", str(cluster)], user="alice")
