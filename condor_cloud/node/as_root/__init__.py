"""Run as root by condor_vm-gahp: the LIBVIRT_XML_SCRIPT (libexec/libvirt-xml)."""
