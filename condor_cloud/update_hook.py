"""The update hook (<KW>_HOOK_UPDATE_JOB_INFO), run by the starter with each job update while the instance runs:
discover the instance's IP address on the node and publish it into the job ad with condor_chirp, so condor_q and
the API's public_addresses show it. Its own output is ignored by HTCondor."""

import sys

from . import addresses, config, domain, instances, jobad
from .errors import CloudError


def main(argv=None, stdin=None, stdout=None, discover=addresses.discover, publish=addresses.publish):
    """Job ad on stdin; publishes ChirpCloudAddress(es) when known; always exits 0 (a miss is retried next time)."""
    stdin = stdin or sys.stdin
    try:
        settings = config.load_settings()
        ad = jobad.read_ad(stdin)
        instance_id = jobad.get(ad, "CloudInstanceId", str, "")
        if not instance_id:
            return 0
        instance = instances.load(settings.instance_dir, instance_id)
        network = domain.parse_network(settings.network)
        found = discover(instance.meta["mac"], network, libvirt_uri=settings.libvirt_uri)
        known = jobad.get(ad, addresses.ATTR_ADDRESSES, str, "")
        attrs = addresses.address_attrs(found)
        if attrs and attrs[addresses.ATTR_ADDRESSES] != known:
            publish(attrs)
    except CloudError as exc:
        sys.stderr.write("condor-cloud update: %s\n" % exc.message)
    return 0
