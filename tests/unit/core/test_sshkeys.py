"""SSH public keys: check_ssh_key, the one validator (the seed uses it as is for CloudSSHKey), and the stricter
parse_public_key of the API's key store."""

import base64
import struct

import pytest

from condor_cloud.core import errors
from condor_cloud.core import sshkeys
from condor_cloud.core.errors import CloudError

from support import ECDSA, ED25519, RSA



def _with_comment(comment):
    return ED25519.rsplit(" ", 1)[0] + " " + comment


def _swap_body(key, other):
    return "%s %s x" % (key.split()[0], other.split()[1])


def _blob(*strings):
    return base64.b64encode(b"".join(struct.pack(">I", len(s)) + s for s in strings)).decode("ascii")


# ------------------------------------------------------------------------------------------------- check_ssh_key

@pytest.mark.parametrize("key", [ED25519, RSA, ECDSA])
def test_good_keys(key):
    assert sshkeys.check_ssh_key(key) == key
    assert sshkeys.check_ssh_key("  " + key.replace(" ", "\t ") + "  ") == key


def test_key_without_comment_and_comment_with_spaces():
    kind, body, _ = ED25519.split(" ", 2)
    assert sshkeys.check_ssh_key("%s %s" % (kind, body)) == "%s %s" % (kind, body)
    assert sshkeys.check_ssh_key("%s %s  my   laptop " % (kind, body)) == "%s %s my laptop" % (kind, body)


@pytest.mark.parametrize("key,message", [
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "type 'ssh-dss' is not supported"),
    ('command="rm -rf /" ' + ED25519, "type 'command=\"rm' is not supported"),
    ("ssh-ed25519", "must look like"),
    ("ssh-ed25519 not*base64 x", "not base64"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI= x", "not valid base64"),
    ("ssh-ed25519 AAAA x", "truncated"),
    ("ssh-ed25519 " + _blob(b"ssh-ed25519", b"short"), "truncated"),
    (_swap_body(ED25519, RSA), "not a ssh-ed25519 key .*does not match"),
    (ED25519 + "\nssh-rsa AAAA", "control character"),
    (ED25519 + "\x1b[2J", "control character"),
    (ED25519 + "\x00", "control character"),
    ("ssh-ed25519 " + "A" * 20000, "too long"),
    (_with_comment("c" * 300), "comment is too long"),
    (5, "must be a string"),
])
def test_bad_keys(key, message):
    with pytest.raises(CloudError, match=message) as info:
        sshkeys.check_ssh_key(key)
    assert info.value.code == errors.BAD_REQUEST


# ------------------------------------------------------------------------------------- the key store's additions

def test_key_store_takes_one_key_with_blank_space_around():
    assert sshkeys.parse_public_key("\n  %s \r\n" % ED25519) == ED25519
    with pytest.raises(CloudError, match="one line") as info:
        sshkeys.parse_public_key(ED25519 + "\n" + RSA)
    assert info.value.code == errors.BAD_REQUEST


def test_key_store_checks_with_check_ssh_key():
    with pytest.raises(CloudError, match="type 'ssh-dss' is not supported") as info:
        sshkeys.parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP")
    assert info.value.code == errors.BAD_REQUEST


@pytest.mark.parametrize("comment", ["alice@laptop", "a.b_c+d=e:f,g/h-i", "c" * 200])
def test_key_store_comment_alphabet(comment):
    assert sshkeys.parse_public_key(_with_comment(comment)) == _with_comment(comment)


@pytest.mark.parametrize("comment", ['x"$(Owner)', "my laptop", "back\\slash", "caf\u00e9", "c" * 201])
def test_key_store_refuses_comments_the_seed_takes(comment):
    assert sshkeys.check_ssh_key(_with_comment(comment)) == _with_comment(comment)
    with pytest.raises(CloudError, match="comment") as info:
        sshkeys.parse_public_key(_with_comment(comment))
    assert info.value.code == errors.BAD_REQUEST
