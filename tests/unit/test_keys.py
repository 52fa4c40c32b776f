"""SSH public keys: check_ssh_key, the one validator (the seed uses it as is for CloudSSHKey), and the stricter
parse_public_key of the API's key store."""

import base64
import struct

import pytest

from condor_cloud import errors, keys
from condor_cloud.errors import CloudError

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKIIQRb+RTtN147yImzguA+ZJcsFCuYSvtE80Xb3bBLl alice@example.org"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDht5rSVgmAmCYI+GJpn9KMPr7JrvY/3lIJz4zEJ8IKNU9PQ0K58ClxUtgO5lYF"
       "9uWtIz48I7K04uBPauLd0/i6e3X8h5L4QgGgRXWraFGgeqgq1UzRIxeCKSWXt9q+E7wncdMOa/NkVXfAImJNvgg9rRqvx09s96uX"
       "sz0CJkXjYDgbz770p0PeDgS8BdmvitC8lfATQLn5kURKgAIOgJy0dxmIDEi4EMCsK0LbFlu0J7+T9POMvBQNThzyl58JRdSfxHBS"
       "4++YgBqt8bw0N2a2nR43oYODkZjaTQnzat/z6/m87bSsbK+KpK20o0MIJvsRIfbnX8IAyyPeYtHID9eF bob@example.org")
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNUkdayDt35W5yccWSmrxQ/YhlJxOZPxEVOyh9lUkujYS2YuKvYz2l4b8M3Gp1b46SXAPmV5YqD5oFy7VHPLlOU= carol"
SCRIPT = b"#!/bin/sh\necho \"hello from $(hostname)\" > /dev/console\n"


def _with_comment(comment):
    return ED25519.rsplit(" ", 1)[0] + " " + comment


def _swap_body(key, other):
    return "%s %s x" % (key.split()[0], other.split()[1])


def _blob(*strings):
    return base64.b64encode(b"".join(struct.pack(">I", len(s)) + s for s in strings)).decode("ascii")


# ------------------------------------------------------------------------------------------------- check_ssh_key

@pytest.mark.parametrize("key", [ED25519, RSA, ECDSA])
def test_good_keys(key):
    assert keys.check_ssh_key(key) == key
    assert keys.check_ssh_key("  " + key.replace(" ", "\t ") + "  ") == key


def test_key_without_comment_and_comment_with_spaces():
    kind, body, _ = ED25519.split(" ", 2)
    assert keys.check_ssh_key("%s %s" % (kind, body)) == "%s %s" % (kind, body)
    assert keys.check_ssh_key("%s %s  my   laptop " % (kind, body)) == "%s %s my laptop" % (kind, body)


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
        keys.check_ssh_key(key)
    assert info.value.code == errors.BAD_REQUEST


# ------------------------------------------------------------------------------------- the key store's additions

def test_key_store_takes_one_key_with_blank_space_around():
    assert keys.parse_public_key("\n  %s \r\n" % ED25519) == ED25519
    with pytest.raises(CloudError, match="one line") as info:
        keys.parse_public_key(ED25519 + "\n" + RSA)
    assert info.value.code == errors.BAD_REQUEST


def test_key_store_checks_with_check_ssh_key():
    with pytest.raises(CloudError, match="type 'ssh-dss' is not supported") as info:
        keys.parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP")
    assert info.value.code == errors.BAD_REQUEST


@pytest.mark.parametrize("comment", ["alice@laptop", "a.b_c+d=e:f,g/h-i", "c" * 200])
def test_key_store_comment_alphabet(comment):
    assert keys.parse_public_key(_with_comment(comment)) == _with_comment(comment)


@pytest.mark.parametrize("comment", ['x"$(Owner)', "my laptop", "back\\slash", "caf\u00e9", "c" * 201])
def test_key_store_refuses_comments_the_seed_takes(comment):
    assert keys.check_ssh_key(_with_comment(comment)) == _with_comment(comment)
    with pytest.raises(CloudError, match="comment") as info:
        keys.parse_public_key(_with_comment(comment))
    assert info.value.code == errors.BAD_REQUEST
