"""Read-only libvirt access for the execute account (any local account may open libvirt's read-only socket)."""


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
