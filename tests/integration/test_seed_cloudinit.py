"""A seed built by condor_cloud.node.seed, read back by cloud-init's own NoCloud datasource (Debian's cloud-init).

cloud-init finds the volume by label and mounts it (util.mount_cb), then reads the mount point with
util.pathprefix2dict, exactly as it reads a NoCloud seed directory. The kernel here cannot mount iso9660, so the
test reads the volume with pycdlib under its Rock Ridge names (the names Linux's isofs shows), puts the files in
<cloud_dir>/seed/nocloud/ and lets cloud-init's DataSourceNoCloud.get_data() and its user-data processing do the
rest, with the cloud-init and Python of the sandbox root (chroot).

Where cloud-init comes from, in order:
  CLOUD_TEST_CLOUDINIT_PYTHONPATH  a directory holding the `cloudinit` package, run with this host's python3
                                   (e.g. `dpkg-deb -x cloud-init_*.deb DIR`; DIR/usr/lib/python3/dist-packages),
                                   with CLOUD_TEST_CLOUDINIT_PYTHON (default /usr/bin/python3), which needs
                                   cloud-init's dependencies (yaml, requests, configobj, jsonpatch, jinja2)
  CLOUD_SANDBOX_ROOT               a sandbox root (tests/sandbox/build-root) with the cloud-init package
  the newest complete root in CLOUD_SANDBOX_CACHE (default /var/tmp/condor-cloud-sandbox) with cloud-init
Otherwise the test is skipped with the reason.
"""

import base64
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from condor_cloud.core import userdata
from condor_cloud.node import seed

CLOUDINIT_REL = "usr/lib/python3/dist-packages/cloudinit"
from public_keys import ECDSA, ED25519  # noqa: E402

# Runs with cloud-init's Python: argv[1] = cloud_dir holding seed/nocloud/{meta-data,user-data,...}.
READER = r'''
import json, logging, sys, yaml
logging.basicConfig(level=logging.WARNING)
from cloudinit import helpers
from cloudinit.sources import DataSourceNoCloud

cloud_dir = sys.argv[1]
paths = helpers.Paths({"cloud_dir": cloud_dir, "run_dir": cloud_dir + "/run"})
# fs_label None: do not probe block devices with blkid (the seed is given as the seed directory).
ds = DataSourceNoCloud.DataSourceNoCloud({"datasource": {"NoCloud": {"fs_label": None}}}, None, paths)
if not ds._get_data():
    print(json.dumps({"claimed": False}))
    sys.exit(0)
configs, scripts = [], []
for part in ds.get_userdata().walk():
    if part.get_content_maintype() == "multipart":
        continue
    ctype = part.get_content_type()
    body = part.get_payload(decode=True)
    if ctype == "text/cloud-config":
        configs.append(yaml.safe_load(body))
    elif ctype == "text/x-shellscript":
        scripts.append(body.decode("utf-8"))
print(json.dumps({
    "claimed": True,
    "seed": ds.seed,
    "instance_id": ds.get_instance_id(),
    "hostname": ds.metadata.get("local-hostname"),
    "keys": ds.get_public_ssh_keys(),
    "userdata_raw": __import__("base64").b64encode(ds.userdata_raw).decode("ascii"),
    "configs": configs,
    "scripts": scripts,
    "network_config": ds.network_config,
}))
'''


def _complete_roots():
    cache = os.environ.get("CLOUD_SANDBOX_CACHE", "/var/tmp/condor-cloud-sandbox")
    roots = [r for r in glob.glob(os.path.join(cache, "root-*")) if os.path.exists(os.path.join(r, ".condor-cloud-root-complete"))]
    return sorted(roots, key=os.path.getmtime, reverse=True)


def _runner():
    """(how to run READER, where to put the seed directory) or pytest.skip with the reason."""
    pythonpath = os.environ.get("CLOUD_TEST_CLOUDINIT_PYTHONPATH")
    if pythonpath:
        if not os.path.isdir(os.path.join(pythonpath, "cloudinit")):
            pytest.skip("CLOUD_TEST_CLOUDINIT_PYTHONPATH=%s has no cloudinit package" % pythonpath)
        return ("host", pythonpath)
    candidates = [os.environ["CLOUD_SANDBOX_ROOT"]] if os.environ.get("CLOUD_SANDBOX_ROOT") else _complete_roots()
    if not candidates:
        pytest.skip("no sandbox root (run tests/sandbox/build-root, or set CLOUD_SANDBOX_ROOT)")
    for root in candidates:
        if os.path.isdir(os.path.join(root, CLOUDINIT_REL)):
            if os.geteuid() != 0:
                pytest.skip("reading the seed with the sandbox's cloud-init needs root (chroot)")
            return ("chroot", root)
    pytest.skip("the sandbox root %s has no cloud-init package yet (add cloud-init to "
                "tests/sandbox/root-packages)" % candidates[0])


def read_with_cloudinit(tmp_path, files):
    kind, where = _runner()
    if kind == "host":
        base = tempfile.mkdtemp(dir=str(tmp_path))
        inner = base
    else:
        base = tempfile.mkdtemp(prefix="seed-cloudinit-", dir=os.path.join(where, "tmp"))
        inner = "/tmp/" + os.path.basename(base)
    try:
        nocloud = os.path.join(base, "seed", "nocloud")
        os.makedirs(nocloud)
        for name, data in files.items():
            with open(os.path.join(nocloud, name), "wb") as f:
                f.write(data)
        if kind == "host":
            env = dict(os.environ, PYTHONPATH=where)
            cmd = [os.environ.get("CLOUD_TEST_CLOUDINIT_PYTHON", "/usr/bin/python3"), "-c", READER, inner]
        else:
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
            cmd = ["chroot", where, "/usr/bin/python3", "-c", READER, inner]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def build_and_read(tmp_path, **kwargs):
    pytest.importorskip("pycdlib")
    path = str(tmp_path / "seed.iso")
    seed.build_seed(path, "12.0-0a1b2c3d", **kwargs)
    label, files = seed.read_seed(path)
    assert label == "cidata"
    return read_with_cloudinit(tmp_path, files)


def test_default_user_data_carries_the_key(tmp_path):
    got = build_and_read(tmp_path, hostname="web1", ssh_keys=[ED25519, ECDSA])
    assert got["claimed"] and "nocloud" in got["seed"]
    assert got["instance_id"] == "12.0-0a1b2c3d"
    assert got["hostname"] == "web1"
    assert got["keys"] == [ED25519, ECDSA]
    assert got["configs"] == [{"ssh_authorized_keys": [ED25519, ECDSA]}]


def test_user_script_and_key(tmp_path):
    script = "#!/bin/sh\necho \"hello from $(hostname)\" > /dev/console\n"
    user_data = userdata.decode_user_data(base64.b64encode(script.encode()).decode())
    got = build_and_read(tmp_path, hostname="web1", user_data=user_data, ssh_keys=[ED25519])
    assert base64.b64decode(got["userdata_raw"]) == script.encode()
    assert got["scripts"] == [script]
    assert got["keys"] == [ED25519]          # from meta-data public-keys, although the user data has none


def test_gzip_cloud_config_and_network_config(tmp_path):
    config = "#cloud-config\nruncmd:\n  - [echo, 'gz ok']\n"
    got = build_and_read(tmp_path, hostname="db-2", user_data=gzip.compress(config.encode()),
                         network_config=seed.dhcp_network_config("52:54:00:3E:8B:1C"))
    assert got["configs"] == [{"runcmd": [["echo", "gz ok"]]}]
    assert got["network_config"] == {"version": 2, "ethernets": {
        "primary": {"match": {"macaddress": "52:54:00:3e:8b:1c"}, "dhcp4": True}}}
    assert got["hostname"] == "db-2" and got["keys"] == []


def test_hostile_key_comment_and_user_data_stay_data(tmp_path):
    key = ED25519.rsplit(" ", 1)[0] + ' x": y\' #: {z: 1} - ]'
    hostile = b"#cloud-config\nbogus: ../../etc/passwd\n"
    got = build_and_read(tmp_path, hostname="web1", user_data=hostile, ssh_keys=[key])
    assert got["keys"] == [key]
    assert got["instance_id"] == "12.0-0a1b2c3d" and got["hostname"] == "web1"
    assert got["configs"] == [{"bogus": "../../etc/passwd"}]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
