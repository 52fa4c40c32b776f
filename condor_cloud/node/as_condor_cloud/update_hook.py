"""The update hook (<KW>_HOOK_UPDATE_JOB_INFO), run by the starter with each job update while the instance runs:
discover the instance's IP address on the node and, when the job asked for VNC (vm_vnc = true), where its VNC
server listens; publish both into the job ad with condor_chirp, so condor_q and the API show them. HTCondor
ignores the hook's output.

The instance is the one this hook's starter made (instance_dirs.find_bound), never one named by the job ad: a job's
owner controls its ad, and publishing another instance's address or VNC endpoint would leak it."""

import os
import socket
import sys

from condor_cloud.node import addresses, domain_xml, instance_dirs, jobad, vnc
from condor_cloud.core import config
from condor_cloud.core.errors import CloudError


def node_name(machine_ad_path=None):
    """The node's host name as HTCondor knows it (the machine ad's Machine), else the FQDN."""
    path = machine_ad_path if machine_ad_path is not None else os.environ.get("_CONDOR_MACHINE_AD", "")
    if path:
        try:
            with open(path) as f:
                name = jobad.get(jobad.read_ad(f), "Machine", str, "")
            if name:
                return name
        except (OSError, CloudError):
            pass
    return socket.getfqdn()


def main(argv=None, stdin=None, stdout=None, discover=addresses.discover, publish=addresses.publish,
         read_xml=vnc.live_xml, starter_pid=None):
    """Job ad on stdin; publishes ChirpCloudAddress(es) and ChirpCloudVNC when known and changed; exit 0, or 1
    with the reason on standard error (the next update tries again)."""
    stdin = stdin or sys.stdin
    try:
        settings = config.load_settings()
        ad = jobad.read_ad(stdin)
        starter = instance_dirs.Starter.of(starter_pid if starter_pid is not None else os.getppid())
        bound = instance_dirs.find_bound(settings.instance_dir, starter)
        if not bound:
            return 0  # before the prepare hook ran (the first update comes earlier), or it failed
        instance = bound[0]
        network = domain_xml.parse_network(settings.network)
        attrs = {}
        found = addresses.address_attrs(discover(instance.meta["mac"], network, libvirt_uri=settings.libvirt_uri))
        if found and found[addresses.ATTR_ADDRESSES] != jobad.get(ad, addresses.ATTR_ADDRESSES, str, ""):
            attrs.update(found)
        if jobad.get(ad, "JobVMVNCConsole", bool, False):
            display = vnc.vnc_attrs(instance.meta["uuid"], node_name(), settings.libvirt_uri, read_xml)
            if display and display[vnc.ATTR_VNC] != jobad.get(ad, vnc.ATTR_VNC, str, ""):
                attrs.update(display)
        if attrs:
            publish(attrs)
        return 0
    except CloudError as exc:
        sys.stderr.write("condor-cloud update: %s\n" % exc.message)
        return 1
