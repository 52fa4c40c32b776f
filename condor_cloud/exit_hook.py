"""The job exit hook (<KW>_HOOK_JOB_EXIT): remove the instance's directory (overlays, seed)
whatever the reason the job left the node: exit, remove, hold or evict."""

import os
import sys

from . import config, instances, jobad
from .errors import CloudError

REASONS = ("exit", "remove", "hold", "evict")


def find_instance_ids(settings, ad, starter_pid):
    """The instance of this job: CloudInstanceId when the ad has it, else the one this starter created."""
    instance_id = jobad.get(ad, "CloudInstanceId", str, "")
    if instance_id:
        instances.check_instance_id(instance_id)
        return [instance_id]
    # After a failed prepare the ad may lack our attributes: match on the job and the starter process.
    global_id = jobad.get(ad, "GlobalJobId", str, "")
    found = []
    for candidate in instances.list_ids(settings.instance_dir):
        try:
            meta = instances.load(settings.instance_dir, candidate).meta
        except CloudError:
            continue
        if meta.get("job") == global_id and (meta.get("starter") or {}).get("pid") == starter_pid:
            found.append(candidate)
    return found


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
        pid = starter_pid if starter_pid is not None else os.getppid()
        for instance_id in find_instance_ids(settings, ad, pid):
            instances.remove(settings.instance_dir, instance_id)
        return 0
    except (CloudError, OSError) as exc:
        sys.stderr.write("condor-cloud exit: %s\n" % exc)
        return 1
