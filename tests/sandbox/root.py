"""The sandbox's root filesystem: a writable copy of the cached Debian 13 root (tests/sandbox/build-root), its own
/dev, /proc and /sys, the test accounts, and the project installed into it as its packages install it.

- build-root gives the cached root; each run gets a writable copy: an overlayfs (lower = cached root, upper under
  the run dir) or, where overlayfs cannot be mounted, `cp -a --reflink=auto`.
- The run root gets its own /dev (tmpfs with the few device nodes QEMU needs, /dev/kvm as root:kvm 0660 so libvirt
  keeps its QEMU capability cache), /dev/pts (new instance), /proc and /sys.  The host's /dev is never written.
- The project is installed from its RPMs' payloads (`make rpm`, packaging/install-rpm-payload: owners, modes and
  %config as the headers say) or, with CLOUD_SANDBOX_INSTALL=make or without rpmbuild, with
  `make install-node install-master DESTDIR=<root>`."""
import os
import re
import shutil
import socket

from host import SandboxError, sh

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = "/var/lib/condor-cloud/shared_images"
CONDOR_DIRS = ("/var/run/condor", "/var/lock/condor", "/var/log/condor", "/var/lib/condor", "/var/lib/condor/spool",
               "/var/lib/condor/execute", "/var/spool/condor")


def cached_root():
    """Host path of the cached root (built on first use, ~1 min; then a second)."""
    return sh([os.path.join(HERE, "build-root")]).stdout.strip()


def make(run, base, use_netns, users, repo):
    """Make the run's root from base and install the project into it: the overlay (or copy), the network
    namespace, the filesystems, the accounts users, the project from repo.  Everything made is recorded in run."""
    os.makedirs(run.rundir)
    run.save()
    _writable_copy(run, base)
    if use_netns:
        _netns(run)
    _filesystems(run)
    _accounts_and_dirs(run, users)
    install(run, repo)


def _writable_copy(run, base):
    os.makedirs(run.root)
    upper, work = os.path.join(run.rundir, "upper"), os.path.join(run.rundir, "work")
    os.makedirs(upper)
    os.makedirs(work)
    try:
        run.mount("-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s" % (base, upper, work),
                  run.root)
    except SandboxError:
        # No overlayfs here (e.g. inside some containers): a full copy, reflinked where the fs can.
        run.state["copy"] = True
        run.save()
        sh(["cp", "-a", "--reflink=auto", base + "/.", run.root])


def _netns(run):
    """The network namespace every daemon runs in (the pool lives on its 127.0.0.1; any libvirt bridge lives and
    dies with it)."""
    sh(["ip", "netns", "add", run.netns])
    run.state["netns"] = run.netns
    run.save()
    sh(["ip", "-n", run.netns, "link", "set", "lo", "up"])


def _filesystems(run):
    r = run.root
    # Private /dev: only what QEMU/libvirt/HTCondor need; /dev/kvm mirrors the host's owner and mode
    # (the root's kvm group has the host's GID, see build-root).
    run.mount("-t", "tmpfs", "-o", "mode=755,nosuid", "sandbox-dev", r + "/dev")
    nodes = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
    for n, (ma, mi) in nodes.items():
        os.mknod(r + "/dev/" + n, 0o20666, os.makedev(ma, mi))
        os.chmod(r + "/dev/" + n, 0o666)
    if os.path.exists("/dev/kvm"):
        # root:kvm 0660 whatever the host has (here root:root 0600): libvirt probes QEMU's capabilities
        # as root and finds KVM, then checks /dev/kvm as the QEMU user (libvirt-qemu, group kvm); if that
        # user cannot open it, libvirt discards its capability cache and re-probes on EVERY domain start
        # ("KVM was enabled when probing ..., but it is not available now": 48 s instead of 0.4 s).
        # Domains still use TCG (type='qemu'); KVM itself does not work on these machines.
        kvm_gid = int(run.run(["getent", "group", "kvm"]).stdout.split(":")[2])
        os.mknod(r + "/dev/kvm", 0o20660, os.stat("/dev/kvm").st_rdev)
        os.chown(r + "/dev/kvm", 0, kvm_gid)
        os.chmod(r + "/dev/kvm", 0o660)
    os.makedirs(r + "/dev/net")
    os.mknod(r + "/dev/net/tun", 0o20666, os.makedev(10, 200))
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        os.symlink(target, r + "/dev/" + link)
    os.makedirs(r + "/dev/pts")
    os.makedirs(r + "/dev/shm")
    run.mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620,gid=5", "sandbox-devpts", r + "/dev/pts")
    run.mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "sandbox-shm", r + "/dev/shm")
    run.mount("-t", "proc", "sandbox-proc", r + "/proc")
    # sysfs mounted from inside the netns so /sys/class/net shows the sandbox's interfaces
    sh(run.prefix() + ["mount", "-t", "sysfs", "sandbox-sys", r + "/sys"])
    run.state["mounts"].append(r + "/sys")
    run.save()


def _accounts_and_dirs(run, users):
    names = " ".join(sorted({socket.gethostname(), socket.getfqdn()}))
    with open(run.path("/etc/hosts"), "w") as f:
        f.write("127.0.0.1\tlocalhost %s\n" % names)
    for u in users:
        if run.run(["getent", "passwd", u], check=False).returncode != 0:
            run.run(["useradd", "--create-home", "--shell", "/bin/bash", u])
    for d in CONDOR_DIRS:
        os.makedirs(run.path(d), exist_ok=True)
        run.run(["chown", "condor:condor", d])


def install(run, repo):
    """Install the project into the root (see the module's docstring), then what a package's scriptlets would
    make if the install did not: the condor-cloud account, condor in its groups, the node's directories."""
    if os.environ.get("CLOUD_SANDBOX_INSTALL", "rpm") == "rpm" and shutil.which("rpmbuild"):
        run.state["rpms"] = _install_rpms(run, repo)
        run.state["install"] = "rpm"
    else:
        sh(["make", "-C", repo, "install-node", "install-master", "DESTDIR=" + run.root, "PREFIX=/usr",
            "PYTHON=/usr/bin/python3"])
        run.state["install"] = "make"
    run.save()
    if run.run(["getent", "passwd", "condor-cloud"], check=False).returncode != 0:
        run.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/condor-cloud", "--no-create-home",
                 "--shell", "/usr/sbin/nologin", "condor-cloud"])
    run.run(["usermod", "-a", "-G", "condor-cloud,libvirt", "condor"])
    for d, mode in (("/var/lib/condor-cloud/local_cache", 0o2775), ("/var/lib/condor-cloud/instances", 0o2771)):
        os.makedirs(run.path(d), exist_ok=True)
        run.run(["chown", "condor-cloud:condor-cloud", d])
        os.chmod(run.path(d), mode)
    os.makedirs(run.path(STORE + "/staging"), exist_ok=True)
    os.chmod(run.path(STORE), 0o755)


def _install_rpms(run, repo):
    """Build the RPMs (make rpm) and install their payloads; returns their file names."""
    build = os.path.join(run.rundir, "build")
    sh(["make", "-C", repo, "--no-print-directory", "rpm", "BUILDDIR=" + build])
    with open(os.path.join(repo, "condor-cloud.spec")) as f:
        version = re.search(r"^Version:\s*(\S+)", f.read(), re.M).group(1)
    rpmdir = os.path.join(build, "rpm", "RPMS", "noarch")
    rpms = sorted(os.path.join(rpmdir, n) for n in os.listdir(rpmdir)
                  if n.endswith(".noarch.rpm") and "-%s-" % version in n)
    if len(rpms) != 3:
        raise SandboxError("expected 3 RPMs of version %s, found %s" % (version, rpms))
    sh([os.path.join(repo, "packaging", "install-rpm-payload"), run.root] + rpms)
    return [os.path.basename(r) for r in rpms]


def put_image(run, name, src, store=STORE):
    """Copy src (host path) into the image store as name (world-readable, as the store requires); returns its path
    inside the root."""
    dest = run.path(store + "/" + name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o644)
    return store + "/" + name
