"""condor_cloud.master.tls: the self-signed certificate `condor-cloud api-cert create` makes, and the pair check the
server runs before it starts. Clients verify it for real here (a TLS handshake over a socket pair)."""

import base64
import grp
import hashlib
import os
import socket
import ssl
import threading

import pytest

pytest.importorskip("cryptography")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from condor_cloud.master import tls  # noqa: E402
from condor_cloud.core.errors import CloudError  # noqa: E402


@pytest.fixture
def pair(tmp_path):
    cert, key = str(tmp_path / "tls" / "api.crt"), str(tmp_path / "tls" / "api.key")
    info = tls.create(cert, key, ["master.example.org", "localhost"], ["192.0.2.10", "127.0.0.1", "::1"], days=30,
                      group=None)
    return cert, key, info


def handshake(cert, key, cafile, server_hostname, strict=True):
    """Serve one TLS handshake with cert/key on a socket pair; return the client's peer certificate (DER) or raise
    the client's ssl error."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cafile)
    if strict:  # what Python 3.13's create_default_context sets: the certificate must pass these too
        client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    a, b = socket.socketpair()

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=server_hostname) as c:
            der = c.getpeercert(binary_form=True)
            c.sendall(b"x")
            return der
    finally:
        b.close()
        t.join(10)


def test_created_certificate_is_a_server_certificate_for_the_names(pair):
    cert_path, key_path, info = pair
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["master.example.org", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10", "127.0.0.1", "::1"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.issuer == cert.subject and "CN=master.example.org" in info.subject
    assert (info.names, info.addresses) == (("master.example.org", "localhost"), ("192.0.2.10", "127.0.0.1", "::1"))
    # The fingerprints shown are those of this certificate and its public key (openssl/curl/Chromium spellings).
    der = cert.public_bytes(serialization.Encoding.DER)
    assert info.sha256 == ":".join("%02X" % b for b in hashlib.sha256(der).digest())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert info.spki_sha256 == base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert not info.expired and info.as_dict()["public_key_pin"] == "sha256//" + info.spki_sha256
    # The key is for the API's group only; the certificate is public.
    assert os.stat(key_path).st_mode & 0o777 == 0o640
    assert os.stat(cert_path).st_mode & 0o777 == 0o644
    assert not [n for n in os.listdir(os.path.dirname(cert_path)) if n.endswith(".tmp")]


@pytest.mark.parametrize("hostname", ["master.example.org", "localhost", "192.0.2.10", "127.0.0.1", "::1"])
def test_clients_trust_the_certificate_file_for_every_name(pair, hostname):
    cert, key, info = pair
    der = handshake(cert, key, cert, hostname)
    assert tls.fingerprint(der) == info.sha256


def test_clients_refuse_other_names_and_other_certificates(pair, tmp_path):
    cert, key, _ = pair
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, key, cert, "other.example.org")
    other = tls.create(str(tmp_path / "o.crt"), str(tmp_path / "o.key"), ["localhost"], [], group=None)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, key, other.path, "localhost")


def test_create_refuses_to_replace_unless_forced(pair):
    cert, key, info = pair
    before = open(cert, "rb").read(), open(key, "rb").read()
    with pytest.raises(CloudError, match="exists already.*--force"):
        tls.create(cert, key, ["localhost"], [], group=None)
    assert (open(cert, "rb").read(), open(key, "rb").read()) == before
    new = tls.create(cert, key, ["localhost"], [], group=None, force=True)
    assert new.sha256 != info.sha256 and new.names == ("localhost",)
    tls.check_pair(cert, key)


def test_create_refuses_if_only_the_key_is_left(tmp_path):
    key = tmp_path / "api.key"
    key.write_text("old")
    with pytest.raises(CloudError, match="api.key exists already"):
        tls.create(str(tmp_path / "api.crt"), str(key), ["localhost"], [], group=None)
    assert not (tmp_path / "api.crt").exists() and key.read_text() == "old"


@pytest.mark.parametrize("names, addresses, days, message", [
    (["bad name"], [], 30, "not a host name"),
    (["-leading.example.org"], [], 30, "not a host name"),
    (["a" * 64 + ".org"], [], 30, "not a host name"),
    (["ok.example.org"], ["300.1.1.1"], 30, "not an IP address"),
    (["ok.example.org"], ["host"], 30, "not an IP address"),
    ([], [], 30, "at least one host name or address"),
    (["ok.example.org"], [], 0, "1 to 3650 days"),
    (["ok.example.org"], [], 4000, "1 to 3650 days"),
])
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, names, addresses, days, message):
    with pytest.raises(CloudError, match=message):
        tls.create(str(tmp_path / "tls" / "api.crt"), str(tmp_path / "tls" / "api.key"), names, addresses,
                   days=days, group=None)
    assert not (tmp_path / "tls").exists()


def test_unknown_group_is_refused(tmp_path):
    with pytest.raises(CloudError, match="no group 'no-such-group-here'"):
        tls.create(str(tmp_path / "api.crt"), str(tmp_path / "api.key"), ["localhost"], [],
                   group="no-such-group-here")
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to root needs root")
def test_key_belongs_to_root_and_the_group(tmp_path):
    group = grp.getgrgid(os.getegid()).gr_name
    info = tls.create(str(tmp_path / "api.crt"), str(tmp_path / "api.key"), ["localhost"], [], group=group)
    st = os.stat(str(tmp_path / "api.key"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, os.getegid(), 0o640)
    assert info.path == str(tmp_path / "api.crt")


def test_check_pair_names_the_command_that_creates_one(tmp_path, pair):
    cert, key, _ = pair
    tls.check_pair(cert, key)
    with pytest.raises(CloudError, match=r"cannot read the API's TLS certificate .*/missing.crt .*"
                                         r"'condor-cloud api-cert create'"):
        tls.check_pair(str(tmp_path / "missing.crt"), key)
    with pytest.raises(CloudError, match=r"TLS private key .*/missing.key .*'condor-cloud api-cert create'"):
        tls.check_pair(cert, str(tmp_path / "missing.key"))
    other = tls.create(str(tmp_path / "o.crt"), str(tmp_path / "o.key"), ["localhost"], [], group=None)
    with pytest.raises(CloudError, match="do not make a usable pair"):
        tls.check_pair(cert, str(tmp_path / "o.key"))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(CloudError, match="do not make a usable pair"):
        tls.check_pair(str(garbage), key)
    with pytest.raises(CloudError, match="not a PEM certificate"):
        tls.describe(str(garbage))
    assert other.path.endswith("o.crt")


def test_default_names_and_addresses_include_loopback(monkeypatch):
    monkeypatch.setattr(socket, "getfqdn", lambda: "master.example.org")
    monkeypatch.setattr(socket, "gethostname", lambda: "master")
    names = tls.default_names()
    assert names == ["master.example.org", "master", "localhost"]
    monkeypatch.setattr(socket, "getaddrinfo", lambda name, *a, **kw: {
        "master.example.org": [(2, 1, 6, "", ("192.0.2.10", 0))],
        "master": [(10, 1, 6, "", ("fe80::1%eth0", 0, 0, 2))]}.get(name) or [])
    assert [str(a) for a in tls.default_addresses(names)] == ["127.0.0.1", "::1", "192.0.2.10", "fe80::1"]
    # A host that knows no name of its own yet: localhost only, once.
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost.localdomain")
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    assert tls.default_names() == ["localhost"]
