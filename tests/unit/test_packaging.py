"""Packaging (issue 4): one version, `make install-*` layout, and the RPMs built by `make rpm` (file lists, modes,
owners, %config flags, rpmlint clean), plus packaging/install-rpm-payload into a scratch root.

The RPM tests build both packages into a temporary directory (about 10 s); they are skipped on a host without
rpmbuild/rpmlint (tests/setup-host installs them on Debian)."""

import os
import re
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def spec_version(spec):
    return re.search(r"^Version:\s*(\S+)", read(spec), re.M).group(1)


VERSION = spec_version("condor-cloud.spec")

# path -> (mode, owner, group, flags); flags "cn" = %config(noreplace), "l" = %license, "d" = %doc
NODE_FILES = {
    "/etc/condor/config.d/30condor_cloud_node.config": ("-rw-r--r--", "root", "root", "cn"),
    "/usr/lib/sysusers.d/condor-cloud-node.conf": ("-rw-r--r--", "root", "root", ""),
    "/usr/lib/tmpfiles.d/condor-cloud-node.conf": ("-rw-r--r--", "root", "root", ""),
    "/usr/libexec/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/hooks": ("drwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/hooks/prepare": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/hooks/exit": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/hooks/cleanup": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/hooks/update": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/libexec/condor-cloud/libvirt-xml": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/share/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/condor-cloud/templates": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/condor-cloud/templates/domain.xml.j2": ("-rw-r--r--", "root", "root", ""),
    "/usr/share/doc/condor-cloud-node": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/doc/condor-cloud-node/40cloud_node.config.example": ("-rw-r--r--", "root", "root", "d"),
    "/usr/share/doc/condor-cloud-node/fedora_install.txt": ("-rw-r--r--", "root", "root", "d"),
    "/usr/share/licenses/condor-cloud-node": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/licenses/condor-cloud-node/LICENSE": ("-rw-r--r--", "root", "root", "l"),
    "/var/lib/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/var/lib/condor-cloud/local_cache": ("drwxrwsr-x", "condor-cloud", "condor-cloud", ""),
    "/var/lib/condor-cloud/instances": ("drwxrws--x", "condor-cloud", "condor-cloud", ""),
    "/var/log/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/var/log/condor-cloud/consoles": ("drwxrws---", "condor-cloud", "condor-cloud", ""),
}
MASTER_FILES = {
    "/etc/condor/config.d/20condor_cloud_master.config": ("-rw-r--r--", "root", "root", "cn"),
    "/etc/condor/config.d/22condor_cloud_quotas.config": ("-rw-r--r--", "root", "root", "cn"),
    "/usr/lib/tmpfiles.d/condor-cloud.conf": ("-rw-r--r--", "root", "root", ""),
    "/usr/share/doc/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/doc/condor-cloud/fedora_install.txt": ("-rw-r--r--", "root", "root", "d"),
    "/usr/share/licenses/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/usr/share/licenses/condor-cloud/LICENSE": ("-rw-r--r--", "root", "root", "l"),
    "/var/lib/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/var/lib/condor-cloud/shared_images": ("drwxr-xr-x", "root", "root", ""),
    "/var/lib/condor-cloud/shared_images/staging": ("drwxr-xr-x", "root", "root", ""),
    # API service and CLI
    "/etc/condor/config.d/25condor_cloud_api.config": ("-rw-r--r--", "root", "root", "cn"),
    "/etc/condor-cloud": ("drwxr-xr-x", "root", "root", ""),
    "/etc/condor-cloud/tls": ("drwxr-xr-x", "root", "root", ""),
    "/usr/bin/condor-cloud-api": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/lib/systemd/system/condor-cloud-api.service": ("-rw-r--r--", "root", "root", ""),
    "/usr/lib/sysusers.d/condor-cloud-api.conf": ("-rw-r--r--", "root", "root", ""),
    "/usr/lib/systemd/system/condor-cloud-image-sweep.service": ("-rw-r--r--", "root", "root", ""),
    "/usr/lib/systemd/system/condor-cloud-image-sweep.timer": ("-rw-r--r--", "root", "root", ""),
    "/usr/lib/tmpfiles.d/condor-cloud-api.conf": ("-rw-r--r--", "root", "root", ""),
    "/var/lib/condor-cloud/keys": ("drwxr-x---", "condor-cloud-api", "condor-cloud-api", ""),
    # EC2 Query API
    "/usr/share/doc/condor-cloud/EC2.txt": ("-rw-r--r--", "root", "root", "d"),
    "/usr/bin/condor-cloud-ec2": ("-rwxr-xr-x", "root", "root", ""),
    "/usr/lib/systemd/system/condor-cloud-ec2.service": ("-rw-r--r--", "root", "root", ""),
    "/var/lib/condor-cloud/ec2": ("drwxr-x---", "condor-cloud-api", "condor-cloud-api", ""),
}
SITE = "/usr/lib/python3/dist-packages/"   # python3_sitelib of the local build (packaging/rpm-macros.debian)


def sysusers_entries(text):
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --- no subprocess ---------------------------------------------------------------------------------------------

def test_one_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    assert spec_version("condor-cloud-node.spec") == VERSION


@pytest.mark.parametrize("spec, sysusers", [("condor-cloud-node.spec", "packaging/condor-cloud-node.sysusers"),
                                           ("condor-cloud.spec", "systemd/condor-cloud-api.sysusers")])
def test_el9_pre_scriptlet_matches_sysusers_file(spec, sysusers):
    """EL9's rpm cannot read sysusers.d files, so the spec's %pre repeats the entries: they must agree."""
    embedded = re.search(r"systemd-sysusers --replace=\S+ - <<'EOF'.*?\n(.*?)\nEOF", read(spec), re.S).group(1)
    assert sysusers_entries(embedded) == sysusers_entries(read(sysusers))


def test_spec_modernity():
    for spec in ("condor-cloud.spec", "condor-cloud-node.spec"):
        text = read(spec)
        assert re.search(r"^License:\s+Apache-2.0$", text, re.M)
        assert re.search(r"^BuildArch:\s+noarch$", text, re.M)
        assert "%autosetup" in text
        for old in ("Group:", "BuildRoot:", "%clean", "%py3_build", "%py3_install", "%setup "):
            assert not re.search(r"^" + re.escape(old), text, re.M), (spec, old)
        # every file under /etc is %config(noreplace)
        for line in re.findall(r"^(.*%\{_sysconfdir\}.*)$", text.split("%files", 1)[1], re.M):
            if not line.startswith(("#", "%dir ")):
                assert line.startswith("%config(noreplace) "), (spec, line)


# --- make install ----------------------------------------------------------------------------------------------

@pytest.mark.subprocess
def test_make_install_layout(tmp_path):
    root = tmp_path / "root"
    subprocess.run(["make", "-s", "-C", REPO, "install-node", "install-master", "DESTDIR=%s" % root, "PREFIX=/usr",
                    "PYTHON=/usr/bin/python3", "PYTHONSITEDIR=/usr/lib/python3/dist-packages"],
                   check=True, stdout=subprocess.PIPE)
    modes = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            modes["/" + os.path.relpath(p, str(root))] = os.stat(p).st_mode & 0o7777
    for path, (mode, _owner, _group, flags) in list(NODE_FILES.items()) + list(MASTER_FILES.items()):
        if "d" in flags or "l" in flags or path.startswith(("/usr/share/doc", "/usr/share/licenses")):
            continue        # docs and licenses are the spec's %doc/%license, not make's
        assert path in modes, path
        assert oct(modes[path]) == oct(perm_bits(mode)), path
    assert modes["/usr/lib/python3/dist-packages/condor_cloud/__init__.py"] == 0o644
    assert modes["/usr/bin/condor-cloud"] == 0o755
    for prog in ("hooks/prepare", "hooks/exit", "hooks/cleanup", "hooks/update", "libvirt-xml"):
        with open(str(root / "usr/libexec/condor-cloud" / prog)) as f:
            assert f.readline() == "#!/usr/bin/python3\n"
    # HTCondor's $(LIBEXEC) is /usr/libexec/condor; the installed snippet must name our own directory.
    node_config = (root / "etc/condor/config.d/30condor_cloud_node.config").read_text()
    assert "$(LIBEXEC)/condor-cloud" not in node_config
    assert "CLOUD_HOOK_DIR = /usr/libexec/condor-cloud/hooks" in node_config


def perm_bits(ls_mode):
    bits = 0
    for i, ch in enumerate(ls_mode[1:]):
        if ch != "-":
            bits |= 1 << (8 - i)
    if ls_mode[6] in "sS":
        bits |= 0o2000
    if ls_mode[3] in "sS":
        bits |= 0o4000
    if ls_mode[6] == "S":
        bits &= ~0o010
    return bits


# --- RPMs ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rpms(tmp_path_factory):
    for tool in ("rpmbuild", "rpmlint", "rpm2cpio", "cpio"):
        if not shutil.which(tool):
            pytest.skip("%s not installed (tests/setup-host installs it)" % tool)
    build = tmp_path_factory.mktemp("build")
    proc = subprocess.run(["make", "-C", REPO, "rpm", "BUILDDIR=%s" % build, "RPMDIR=%s" % (build / "rpm")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    # rpmlint ran as part of `make rpm`: no errors, no warnings (accepted ones are filtered in packaging/rpmlintrc)
    summaries = re.findall(r"(\d+) errors, (\d+) warnings", proc.stdout)
    assert len(summaries) == 3 and all(s == ("0", "0") for s in summaries), proc.stdout[-6000:]
    out = build / "rpm" / "RPMS" / "noarch"
    found = {name: str(out / ("%s-%s-1.noarch.rpm" % (name, VERSION)))
             for name in ("condor-cloud", "condor-cloud-node", "python3-condor-cloud")}
    for path in found.values():
        assert os.path.exists(path), sorted(os.listdir(str(out)))
    found["srpms"] = sorted(str(p) for p in (build / "rpm" / "SRPMS").iterdir())
    found["tarball"] = str(build / ("condor-cloud-%s.tar.gz" % VERSION))
    return found


def rpm_files(path):
    """path -> (mode, owner, group, flags) from the RPM header (what `rpm -qlvp` shows, plus file flags)."""
    out = subprocess.run(["rpm", "-qp", "--qf", r"[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} "
                          r"%{FILEFLAGS:fflags}_ %{FILENAMES}\n]", path],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    files = {}
    for line in out.splitlines():
        mode, owner, group, flags, name = line.split(" ", 4)
        files[name] = (mode, owner, group, flags.rstrip("_"))
    return files


def split_python(files):
    """(files outside the Python site dir, the package-relative paths of the Python files under it)."""
    other = {p: m for p, m in files.items() if not p.startswith(SITE)}
    python = {p[len(SITE):]: m for p, m in files.items() if p.startswith(SITE) and m[0].startswith("-")}
    return other, python


def source_tree(rpms, *tops):
    """Package-relative paths of the files under tops (e.g. condor_cloud/node/) in the source tarball."""
    listing = subprocess.run(["tar", "tzf", rpms["tarball"]], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.split()
    names = [n.split("/", 1)[1] for n in listing]
    return set(n for n in names if n.startswith(tops) and not n.endswith("/"))


def rpm_query(path, *args):
    return subprocess.run(["rpm", "-qp"] + list(args) + [path], check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.split("\n")


@pytest.mark.subprocess
def test_node_rpm(rpms):
    files, python = split_python(rpm_files(rpms["condor-cloud-node"]))
    assert files == NODE_FILES
    # the node's role: condor_cloud/node/ and nothing else of the package
    assert set(python) == source_tree(rpms, "condor_cloud/node/")
    assert [c for c in rpm_query(rpms["condor-cloud-node"], "-c") if c] == [
        "/etc/condor/config.d/30condor_cloud_node.config"]
    requires = set(r.split()[0] for r in rpm_query(rpms["condor-cloud-node"], "-R") if r)
    assert {"python3-condor-cloud", "python3-jinja2", "python3-pycdlib", "condor", "condor-vm-gahp", "libvirt-daemon-driver-qemu", "libvirt-daemon-kvm",
            "qemu-img", "python3-libvirt", "policycoreutils-python-utils", "libvirt-daemon-driver-nwfilter",
            "libvirt-daemon-config-nwfilter"} <= requires


@pytest.mark.subprocess
def test_master_rpm(rpms):
    files, python = split_python(rpm_files(rpms["condor-cloud"]))
    assert files == MASTER_FILES
    # the master's role: condor_cloud/master/ (with the API's templates) and nothing else of the package
    assert set(python) == source_tree(rpms, "condor_cloud/master/")
    assert sorted(c for c in rpm_query(rpms["condor-cloud"], "-c") if c) == [
        "/etc/condor/config.d/20condor_cloud_master.config", "/etc/condor/config.d/22condor_cloud_quotas.config",
        "/etc/condor/config.d/25condor_cloud_api.config"]
    requires = set(r.split()[0] for r in rpm_query(rpms["condor-cloud"], "-R") if r)
    assert {"python3-condor-cloud", "condor", "nfs-utils", "python3-flask", "python3-gunicorn",
            "python3-click", "python3-cryptography"} <= requires
    scripts = subprocess.run(["rpm", "-qp", "--scripts", rpms["condor-cloud"]], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
    assert "condor-cloud-api.service" in scripts


@pytest.mark.subprocess
def test_library_rpm_and_no_conflicts(rpms):
    lib = rpm_files(rpms["python3-condor-cloud"])
    # the shared core and the `condor-cloud` command, which both roles use
    assert lib["/usr/bin/condor-cloud"][:3] == ("-rwxr-xr-x", "root", "root")
    _other, python = split_python(lib)
    modules = set(p for p in python if p.startswith("condor_cloud/"))
    assert modules == source_tree(rpms, "condor_cloud/__init__.py", "condor_cloud/core/")
    # every file of condor_cloud/ in the source tarball is in exactly one of the three packages
    roles = [modules] + [set(split_python(rpm_files(rpms[name]))[1]) for name in ("condor-cloud", "condor-cloud-node")]
    assert sum(len(r) for r in roles) == len(set().union(*roles)) and set().union(*roles) == source_tree(
        rpms, "condor_cloud/")
    assert all(m[0] == "-rw-r--r--" and m[1:3] == ("root", "root") for p, m in lib.items() if p.endswith(".py"))
    # A master that is also a node installs all three: no path in two packages except co-owned directories
    # with identical attributes.
    node, master = rpm_files(rpms["condor-cloud-node"]), rpm_files(rpms["condor-cloud"])
    for a, b in ((node, master), (node, lib), (master, lib)):
        for path in set(a) & set(b):
            assert a[path][0].startswith("d") and a[path] == b[path], path


@pytest.mark.subprocess
def test_srpms_and_tarball(rpms):
    assert [os.path.basename(p) for p in rpms["srpms"]] == [
        "condor-cloud-%s-1.src.rpm" % VERSION, "condor-cloud-node-%s-1.src.rpm" % VERSION]
    for srpm in rpms["srpms"]:
        names = [n for n in rpm_query(srpm, "-l") if n]
        assert names[0] == "condor-cloud-%s.tar.gz" % VERSION and len(names) == 2
    listing = subprocess.run(["tar", "tzf", rpms["tarball"]], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.split()
    top = "condor-cloud-%s/" % VERSION
    assert all(n.startswith(top) for n in listing)
    for needed in ("condor-cloud.spec", "condor-cloud-node.spec", "LICENSE", "Makefile", "setup.py",
                   "pyproject.toml", "hooks/prepare", "condor_cloud/__init__.py", "packaging/rpm-macros.debian",
                   "docs/fedora_install.txt", "tests/unit/conftest.py"):
        assert top + needed in listing, needed
    assert not [n for n in listing if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.subprocess
@pytest.mark.skipif(os.geteuid() != 0, reason="rpm --root and systemd-sysusers --root need root")
def test_install_rpm_payload(rpms, tmp_path):
    if not shutil.which("systemd-sysusers"):
        pytest.skip("systemd-sysusers not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\ncondor:x:100:102::/var/lib/condor:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\ncondor:x:102:\nlibvirt:x:104:\n")
    subprocess.run([os.path.join(REPO, "packaging/install-rpm-payload"), str(root), rpms["condor-cloud"],
                    rpms["condor-cloud-node"], rpms["python3-condor-cloud"]], check=True, stdout=subprocess.PIPE)
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    assert "condor" in groups["condor-cloud"][3].split(",")
    assert "condor" in groups["libvirt"][3].split(",")
    uid, gid = int(users["condor-cloud"][2]), int(groups["condor-cloud"][2])
    for d, mode in (("local_cache", 0o2775), ("instances", 0o2771)):
        st = os.stat(str(root / "var/lib/condor-cloud" / d))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid), d
    assert os.access(str(root / "usr/libexec/condor-cloud/hooks/prepare"), os.X_OK)
    st = os.stat(str(root / "var/lib/condor-cloud/keys"))
    assert (st.st_mode & 0o7777, st.st_uid) == (0o750, int(users["condor-cloud-api"][2]))
