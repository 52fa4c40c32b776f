"""The job exit hook (<KW>_HOOK_JOB_EXIT): remove the instance's directory (overlays, seed)
whatever the reason the job left the node: exit, remove, hold or evict. A destroyed instance (remove) and an evicted
one (its node vacated it: a shutdown, a DELETE while the startd stops; it restarts elsewhere as a new instance) lose
their console log too: nothing of them stays on the node. After exit or hold the log stays CLOUD_CONSOLE_KEEP
seconds, so a guest's end or a failed boot can be read afterwards.

The instance is the one this hook's starter made (instance_dirs.find_bound), never one named by the job ad: a job's
owner controls its ad, and another user's instance id is public."""

import os
import sys

from condor_cloud.core import config
from condor_cloud.node import console_log, instance_dirs, jobad
from condor_cloud.core.errors import CloudError

REASONS = ("exit", "remove", "hold", "evict")


def main(argv=None, stdin=None, stdout=None, starter_pid=None):
    """argv[1] = exit|remove|hold|evict, job ad on stdin; exit 0 (cleaned or nothing to do) or 1."""
    argv = sys.argv if argv is None else argv
    stdin = stdin or sys.stdin
    reason = argv[1] if len(argv) > 1 else ""
    if reason not in REASONS:
        sys.stderr.write("condor-cloud exit: unknown reason %r (expected one of %s)\n" % (reason, ", ".join(REASONS)))
    try:
        settings = config.load_settings()
        ad = jobad.read_ad(stdin)
        jobad.get(ad, "ClusterId", int)  # the ad must at least parse; nothing in it names what to remove
        starter = instance_dirs.Starter.of(starter_pid if starter_pid is not None else os.getppid())
        for instance in instance_dirs.find_bound(settings.instance_dir, starter):
            instance_dirs.remove(settings.instance_dir, instance.id)
            if reason in ("remove", "evict"):
                console_log.remove(settings.console_dir, instance.id)
        return 0
    except (CloudError, OSError) as exc:
        sys.stderr.write("condor-cloud exit: %s\n" % exc)
        return 1
