"""`condor-cloud node ...` (condor_cloud/node/cli.py): the node cache."""

import json
import os

import pytest

from support import cli_runner


@pytest.fixture
def run(cloud):
    return cli_runner(cloud)


def test_node_cache_list_and_prune(run, cloud):
    import time

    for name, age in (("old.img@0123456789abcdef.raw", 3000), ("used.img@0123456789abcdef.raw", 2000),
                      ("new.img@0123456789abcdef.raw", 10)):
        path = cloud.cache / name
        path.write_bytes(b"x" * 8192)
        os.utime(path, (time.time() - age, time.time() - age))
    inst = cloud.instances / "7.0-0123abcd"
    inst.mkdir()
    (inst / "instance.json").write_text(json.dumps({"bases": ["used.img@0123456789abcdef.raw"]}))
    rows = json.loads(run("node", "cache", "list", "--json").output)
    assert [r["image"] for r in rows] == ["old.img", "used.img", "new.img"]
    assert [r["in_use"] for r in rows] == [False, True, False]
    assert run("node", "cache", "prune", "--json").output.strip() == "[]"  # under CLOUD_CACHE_MAX_SIZE
    removed = json.loads(run("node", "cache", "prune", "--all", "--json").output)
    assert sorted(r["file"] for r in removed) == ["new.img@0123456789abcdef.raw", "old.img@0123456789abcdef.raw"]
    assert os.listdir(cloud.cache) == ["used.img@0123456789abcdef.raw"] or \
        sorted(os.listdir(cloud.cache)) == [".locks", "used.img@0123456789abcdef.raw"]
