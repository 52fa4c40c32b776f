"""Instance directories (condor_cloud/node/instance_dirs.py): ids are checked, instance ownership by the
starter process. The binding to the starter across hooks: tests/unit/scenarios/test_instance_binding.py."""

import os

import pytest

from condor_cloud.core.errors import CloudError
from condor_cloud.node import instance_dirs


def test_instance_owned_by_a_reused_pid_is_an_orphan(tmp_path):
    inst = instance_dirs.create(str(tmp_path), "1.0-0000abcd", {"uuid": "u", "mac": "m"}, instance_dirs.Starter.of(os.getpid()))
    assert inst.starter_alive()
    inst.meta["starter"]["start_time"] -= 1  # same pid, different process
    assert not inst.starter_alive()


@pytest.mark.parametrize("bad", ["../x", "1.0", "1.0-XYZ", "1.0-0000abcd/..", ""])
def test_instance_ids_are_checked(tmp_path, bad):
    with pytest.raises(CloudError):
        instance_dirs.load(str(tmp_path), bad)
