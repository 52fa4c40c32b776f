"""The execute node's library (condor-cloud-node): image cache, instance directories, overlays, NoCloud seeds,
domain XML, addresses, VNC, console logs. Imports condor_cloud.core, never condor_cloud.master.

Who runs what, by subpackage:
  as_condor_cloud/  the starter's job hooks (prepare, update, exit), as the execute account condor-cloud
  as_root/          the LIBVIRT_XML_SCRIPT run by condor_vm-gahp, as root
  as_condor/        the startd cron job cleanup, as condor (groups condor-cloud and libvirt)
  cli.py            `condor-cloud node ...`, run by an administrator (root)
"""
