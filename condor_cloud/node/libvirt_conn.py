"""The node's one libvirt module: read-only connections for the execute account (any local account may open
libvirt's read-only socket: addresses, VNC), and Libvirt, the read-write seam that lists running domains with their
disks and destroys domains (the cleanup as condor, a member of the group libvirt; the XML script as root).

libvirt-python is imported inside the functions: the prepare hook imports this package and pays for every import."""

from dataclasses import dataclass


def read_only(uri, use):
    """use(connection) over a read-only libvirt connection to uri; None when libvirt-python, the daemon or the
    object asked for is not there (the callers try again at their next run)."""
    try:
        import libvirt
    except ImportError:
        return None
    conn = None
    try:
        conn = libvirt.openReadOnly(uri)
        return use(conn)
    except libvirt.libvirtError:
        return None
    finally:
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Domain:
    """A running libvirt domain: its UUID, its name, and every file of its disks (each chain, backing files
    included) as libvirt reports them."""
    uuid: str
    name: str
    files: tuple


def disk_files(domain_xml):
    """The files of every disk of a domain's live XML: each <source file|dev> of a <disk>, the <backingStore>
    chain below it included (libvirt reports the whole chain of a running domain)."""
    import xml.etree.ElementTree as ET  # here: the prepare hook imports this module and pays for every import

    found = []
    for disk in ET.fromstring(domain_xml).iter("disk"):
        for source in disk.iter("source"):
            for attr in ("file", "dev"):
                if source.get(attr):
                    found.append(source.get(attr))
    return tuple(found)


class Libvirt:
    """Destroys domains by UUID; a thin seam so unit tests can replace it (integration tests use the real one)."""

    def __init__(self, uri):
        self.uri = uri
        self._conn = None

    def _connect(self):
        import libvirt

        if self._conn is None:
            self._conn = libvirt.open(self.uri)
        return self._conn

    def uuid_of(self, name):
        """UUID of the domain called name, or None if there is none."""
        import libvirt

        try:
            return self._connect().lookupByName(name).UUIDString()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def destroy(self, domain_uuid):
        """Destroy the domain if it exists; return True if it is gone (or never existed)."""
        import libvirt

        try:
            dom = self._connect().lookupByUUIDString(domain_uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return True
            raise
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                raise
        return True

    def running_domains(self):
        """Every running domain (Domain) with the files of its disks. Raises when libvirt cannot answer."""
        import libvirt

        found = []
        for dom in self._connect().listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                found.append(Domain(dom.UUIDString(), dom.name(), disk_files(dom.XMLDesc(0))))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # else: it ended since the listing
                    raise
        return found
