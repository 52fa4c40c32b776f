"""condor_cloud/node/libvirt_conn.py: read-only connections (closed, failures are None) and the read-write
seam's running_domains/disk_files, against a fake libvirt module."""

import sys
import types

from condor_cloud.node import libvirt_conn



def test_read_only_connection_is_closed_and_failures_are_none(monkeypatch):
    import sys
    import types

    from condor_cloud.node.libvirt_conn import read_only

    closed = []

    class Conn:
        def close(self):
            closed.append(True)

    fake = types.ModuleType("libvirt")

    class libvirtError(Exception):
        pass

    fake.libvirtError = libvirtError
    fake.openReadOnly = lambda uri: Conn() if uri == "qemu:///system" else (_ for _ in ()).throw(libvirtError(uri))
    monkeypatch.setitem(sys.modules, "libvirt", fake)
    assert read_only("qemu:///system", lambda conn: "xml") == "xml" and closed == [True]

    def missing(conn):
        raise libvirtError("no domain with matching uuid")

    assert read_only("qemu:///system", missing) is None and closed == [True, True]
    assert read_only("qemu:///nowhere", lambda conn: "xml") is None          # daemon not reachable
    monkeypatch.setitem(sys.modules, "libvirt", None)                        # libvirt-python not installed
    assert read_only("qemu:///system", lambda conn: "xml") is None


# -- the real libvirt seam -----------------------------------------------------------------------------------
LIVE_XML = """<domain type='kvm' id='7'>
  <name>alice_7.0</name>
  <uuid>0e8f3c2a-6b1d-4a55-9a1e-2f6d9d1f0b7c</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/condor-cloud/instances/7.0-0000beef/vda.qcow2' index='2'/>
      <backingStore type='file' index='1'>
        <format type='qcow2'/>
        <source file='/var/lib/condor-cloud/local_cache/demo.qcow2@0123456789abcdef.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/condor-cloud/instances/7.0-0000beef/seed.iso' index='3'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='block' device='disk'>
      <source dev='/dev/vg/data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='nbd' name='export'><host name='example.org' port='10809'/></source>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <serial type='pty'><log file='/var/log/condor-cloud/consoles/7.0-0000beef.log'/></serial>
  </devices>
</domain>"""


def test_disk_files_lists_every_disk_and_its_backing_chain():
    assert libvirt_conn.disk_files(LIVE_XML) == (
        "/var/lib/condor-cloud/instances/7.0-0000beef/vda.qcow2",
        "/var/lib/condor-cloud/local_cache/demo.qcow2@0123456789abcdef.qcow2",
        "/var/lib/condor-cloud/instances/7.0-0000beef/seed.iso",
        "/dev/vg/data")


def test_libvirt_running_domains_lists_active_domains_and_skips_one_that_ended(monkeypatch):
    fake = types.ModuleType("libvirt")

    class libvirtError(Exception):
        def __init__(self, code):
            super().__init__("libvirt error %d" % code)
            self.code = code

        def get_error_code(self):
            return self.code

    class Dom:
        def __init__(self, name, xml):
            self._name, self.xml = name, xml

        def name(self):
            return self._name

        def UUIDString(self):
            return "uuid-" + self._name

        def XMLDesc(self, flags):
            if self.xml is None:
                raise libvirtError(fake.VIR_ERR_NO_DOMAIN)   # it ended between the listing and this call
            return self.xml

    class Conn:
        def listAllDomains(self, flags):
            assert flags == fake.VIR_CONNECT_LIST_DOMAINS_ACTIVE
            return [Dom("alice_7.0", LIVE_XML), Dom("gone", None)]

    fake.libvirtError = libvirtError
    fake.VIR_ERR_NO_DOMAIN = 42
    fake.VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1
    opened = []
    fake.open = lambda uri: opened.append(uri) or Conn()
    monkeypatch.setitem(sys.modules, "libvirt", fake)
    [domain] = libvirt_conn.Libvirt("qemu:///system").running_domains()
    assert opened == ["qemu:///system"]
    assert (domain.uuid, domain.name) == ("uuid-alice_7.0", "alice_7.0")
    assert domain.files == libvirt_conn.disk_files(LIVE_XML)
