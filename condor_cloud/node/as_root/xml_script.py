"""LIBVIRT_XML_SCRIPT: print the domain XML of a prepared instance (runs as root, once per start).

The instance is the one prepared for this job on this node: the one whose recorded scratch directory is this
process's working directory and whose recorded starter is an ancestor of this process (instance_dirs.find_for_xml_script),
never one named by the job ad. Disk paths come from that instance's instance.json; the job ad supplies only the
domain name, memory, vCPUs and VNC, all checked and escaped. On any error this exits 1, and
vm-gahp falls back to its built-in XML, which uses VMPARAM_vm_Disk: the overlay, never a base image.
"""

import os
import sys

from condor_cloud.node import cache, console_log, domain_xml, instance_dirs, jobad
from condor_cloud.core import config, errors
from condor_cloud.core.errors import CloudError

MAX_VCPUS = 256
MAX_MEMORY_MIB = 1 << 22


def _own_file(instance, path, what):
    """path resolved, and refused unless it lies directly in the instance's directory."""
    real = os.path.realpath(path)
    if os.path.dirname(real) != os.path.realpath(instance.path):
        raise CloudError("instance %s names a %s outside its directory" % (instance.id, what), errors.INTERNAL)
    return real


def build_params(settings, ad, kvm_probe=domain_xml.kvm_usable, scratch=None, lineage=None):
    """DomainParams for the job ad on stdin and the instance prepared in this job's scratch directory (default:
    the working directory, where vm-gahp runs this script)."""
    instance = instance_dirs.find_for_xml_script(settings.instance_dir, scratch or os.getcwd(), lineage)
    instance_id = instance.id
    name = jobad.get(ad, "VMPARAM_VM_NAME", str)
    if not name:
        raise CloudError("the job ad has no VMPARAM_VM_NAME", errors.BAD_REQUEST)
    memory = jobad.get(ad, "JobVMMemory", int)
    if memory is None or not 1 <= memory <= MAX_MEMORY_MIB:
        raise CloudError("vm_memory must be between 1 and %d MiB" % MAX_MEMORY_MIB, errors.BAD_REQUEST)
    vcpus = jobad.get(ad, "JobVM_VCPUS", int, 1)
    if not 1 <= vcpus <= MAX_VCPUS:
        raise CloudError("vm_vcpus must be between 1 and %d" % MAX_VCPUS, errors.BAD_REQUEST)
    disks = []
    for d in instance.meta.get("disks", []):
        path = _own_file(instance, d["path"], "disk")
        # The shared base stays owned by the execute account: libvirt must not chown it to QEMU's user
        # (world-readable is enough), so the template names it with relabel='no'.
        backing = os.path.realpath(os.path.join(settings.image_cache, d["base"])) if d.get("base") else ""
        if backing and os.path.dirname(backing) != os.path.realpath(settings.image_cache):
            raise CloudError("instance %s names a base outside the cache" % instance_id, errors.INTERNAL)
        parsed = cache.parse_entry_filename(os.path.basename(backing)) if backing else None
        disks.append(domain_xml.Disk(path, d["device"], d["format"], bool(d.get("readonly")),
                                 backing, parsed[2] if parsed else ""))
    if not disks:
        raise CloudError("instance %s has no disks" % instance_id, errors.INTERNAL)
    cdroms = []
    for c in instance.meta.get("cdroms", []):
        cdroms.append(domain_xml.Disk(_own_file(instance, c["path"], "CD-ROM"), c["device"], "raw", True))
    vnc = jobad.get(ad, "JobVMVNCConsole", bool, False)
    return domain_xml.DomainParams(
        name=name,
        uuid=instance.meta["uuid"],
        domain_type=domain_xml.choose_domain_type(settings.domain_type, kvm_probe),
        memory_mib=memory,
        vcpus=vcpus,
        disks=disks,
        cdroms=cdroms,
        console_log=console_log.log_path(settings.console_dir, instance_id),
        network=domain_xml.parse_network(settings.network),
        mac=instance.meta["mac"],
        vnc_listen=settings.vnc_listen if vnc else None,
    )


def reap_stale_domain(settings, name, own_uuid, hypervisor):
    """Destroy a leftover domain that has this job's name but belongs to a dead instance.

    When a starter is killed its domain keeps running; the job restarts, maybe on this node, and libvirt would
    refuse a second domain of that name: a failed VM launch takes the whole node out of service (HasVM =
    false). Only a domain whose instance's starter is gone (or that has no instance) is destroyed."""
    other = hypervisor.uuid_of(name)
    if other is None or other == own_uuid:
        return False
    for instance_id, instance in instance_dirs.scan(settings.instance_dir):
        if isinstance(instance, CloudError):
            continue
        if instance.meta.get("uuid") == other and instance.starter_alive():
            raise CloudError("a running instance (%s) already has the domain name %s" % (instance_id, name),
                             errors.INTERNAL)
    hypervisor.destroy(other)
    sys.stderr.write("condor-cloud libvirt-xml: destroyed stale domain %s (%s) of a dead instance\n" % (name, other))
    return True


def main(argv=None, stdin=None, stdout=None, hypervisor=None, scratch=None):
    """Job ad on stdin, domain XML on stdout; exit 0, or 1 (message on stderr) so vm-gahp uses its fallback."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        settings = config.load_settings()
        params = build_params(settings, jobad.read_ad(stdin), scratch=scratch)
        try:
            from condor_cloud.node.libvirt_conn import Libvirt

            reap_stale_domain(settings, params.name, params.uuid, hypervisor or Libvirt(settings.libvirt_uri))
        except CloudError:
            raise
        except Exception as exc:  # libvirt unreachable here: vm-gahp will say so itself
            sys.stderr.write("condor-cloud libvirt-xml: could not check for a stale domain: %s\n" % exc)
        stdout.write(domain_xml.render(params, settings.template_dir))
        return 0
    except CloudError as exc:
        sys.stderr.write("condor-cloud libvirt-xml: %s\n" % exc.message)
        return 1
