"""condor_cloud/core/processes.py: the ancestry of this process."""

import os

from condor_cloud.core import processes


def test_ancestors_walks_up_from_this_process():
    chain = processes.ancestors()
    assert chain[0] == os.getpid() and chain[1] == os.getppid()
