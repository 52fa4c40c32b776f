"""A node for hooks/prepare without HTCondor (parts 1 and 3): the bench plays the starter, the hook runs for real."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

from .common import QEMU_IMG, REPO

HOOK = os.path.join(REPO, "hooks", "prepare")
CHILDREN = set()   # hooks still running: killed after each part, whatever happened


def kill_children():
    for pid in list(CHILDREN):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        CHILDREN.discard(pid)


class HookResult:
    def __init__(self, wall, rc, stdout, stderr, rusage):
        self.wall, self.rc, self.stdout, self.stderr, self.rusage = wall, rc, stdout, stderr, rusage
        self.attrs = {}
        for line in stdout.splitlines():
            name, sep, value = line.partition(" = ")
            if sep:
                self.attrs[name.strip()] = value.strip().strip('"')

    @property
    def written(self):
        """Bytes this process caused to be written to storage (getrusage ru_oublock: 512-byte blocks)."""
        return self.rusage.ru_oublock * 512


class HookEnv:
    """A node for hooks/prepare: CONDOR_CONFIG with the CLOUD_* directories under root/name."""

    def __init__(self, root, name, store, python):
        self.dir = os.path.join(root, name)
        self.store = store
        self.cache = os.path.join(self.dir, "cache")
        self.instances = os.path.join(self.dir, "instances")
        self.python = python
        for d in (self.cache, self.instances, os.path.join(self.dir, "templates")):
            os.makedirs(d, exist_ok=True)
        self.config = os.path.join(self.dir, "condor_config")
        with open(self.config, "w") as f:
            f.write("CLOUD_IMAGE_STORE = %s\nCLOUD_IMAGE_CACHE = %s\nCLOUD_INSTANCE_DIR = %s\n"
                    "CLOUD_TEMPLATE_DIR = %s\nCLOUD_QEMU_IMG = %s\n"
                    % (store, self.cache, self.instances, os.path.join(self.dir, "templates"), QEMU_IMG))
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CONDOR_CONFIG": self.config,
                    "PYTHONPATH": REPO, "LANG": "C.UTF-8", "HOME": self.dir}
        self.cluster = 1000

    def ad(self, image):
        self.cluster += 1
        return ('ClusterId = %d\nProcId = 0\nGlobalJobId = "bench.node#%d.0#1700000000"\nOwner = "bench"\n'
                'VMPARAM_vm_Disk = "%s:vda:w"\n' % (self.cluster, self.cluster, image)).encode()

    def spawn(self, image, argv=None):
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        proc = subprocess.Popen(argv or [self.python, HOOK], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                env=self.env, cwd=self.dir)
        CHILDREN.add(proc.pid)
        proc.stdin.write(self.ad(image))
        proc.stdin.close()
        return proc, out, err

    @staticmethod
    def _result(proc, out, err, status, rusage, wall):
        CHILDREN.discard(proc.pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = HookResult(wall, proc.returncode, out.read().decode("utf-8", "replace"),
                         err.read().decode("utf-8", "replace"), rusage)
        out.close()
        err.close()
        if res.rc != 0:
            raise RuntimeError("hook failed (%d): %s %s" % (res.rc, res.stderr[-800:], res.stdout[-800:]))
        return res

    def run(self, image, argv=None):
        t0 = time.perf_counter()
        proc, out, err = self.spawn(image, argv)
        _, status, rusage = os.wait4(proc.pid, 0)
        return self._result(proc, out, err, status, rusage, time.perf_counter() - t0)

    def storm(self, image, n):
        """n concurrent hooks; returns (total wall, [HookResult])."""
        t0 = time.perf_counter()
        procs = {}
        for _ in range(n):
            proc, out, err = self.spawn(image)
            procs[proc.pid] = (proc, out, err)
        results = []
        while procs:
            pid, status, rusage = os.wait4(-1, 0)
            if pid not in procs:
                continue
            proc, out, err = procs.pop(pid)
            results.append(self._result(proc, out, err, status, rusage, time.perf_counter() - t0))
        return time.perf_counter() - t0, results

    def clear_instances(self):
        for d in os.listdir(self.instances):
            shutil.rmtree(os.path.join(self.instances, d))

    def reset_cache(self):
        shutil.rmtree(self.cache)
        os.makedirs(self.cache)

    def entries(self):
        from condor_cloud.node.cache import ImageCache

        return ImageCache(self.cache).entries()
