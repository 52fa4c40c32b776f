"""User data (condor_cloud/core/userdata.py): base64 decoding, the size limit, the kinds cloud-init reads."""

import base64
import gzip

import pytest

from condor_cloud.core import errors, userdata
from condor_cloud.core.errors import CloudError

from support import b64, SCRIPT


# ------------------------------------------------------------------------------------------------- user data


def test_decode_user_data():
    assert userdata.decode_user_data(b64(SCRIPT)) == SCRIPT
    assert userdata.decode_user_data(b64(SCRIPT).encode("ascii")) == SCRIPT
    wrapped = base64.encodebytes(SCRIPT * 10).decode("ascii")       # 76-column lines, like `base64`
    assert "\n" in wrapped and userdata.decode_user_data(wrapped) == SCRIPT * 10
    assert userdata.decode_user_data(None) is None
    assert userdata.decode_user_data("") is None
    assert userdata.decode_user_data(" \n ") is None


@pytest.mark.parametrize("text", ["not base64!", "YWJj$", "YWJjZA=", "YW=Jj", "#cloud-config", "YWJj\x00"])
def test_bad_base64(text):
    with pytest.raises(CloudError, match="not valid base64") as info:
        userdata.decode_user_data(text)
    assert info.value.code == errors.BAD_REQUEST


def test_non_ascii_base64():
    with pytest.raises(CloudError, match="base64"):
        userdata.decode_user_data("YWJj\u00e9")
    with pytest.raises(CloudError, match="non-ASCII"):
        userdata.decode_user_data(b"YWJj\xff")


def test_user_data_kinds():
    gz = gzip.compress(b"\x00\xff binary inside gzip is the guest's business", mtime=0)
    assert userdata.check_user_data(gz) == gz
    mime = b"Content-Type: multipart/mixed; boundary=\"==x==\"\nMIME-Version: 1.0\n\n--==x==\n"
    assert userdata.check_user_data(mime) == mime
    assert userdata.check_user_data("#cloud-config\nhostname: \u00e9\n".encode("utf-8"))


@pytest.mark.parametrize("data,message", [
    (b"#!/bin/sh\n\x00\x01", "NUL byte at offset 10"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "neither UTF-8 text nor gzip"),
    (b"#cloud-config\n\xff\xfe", "binary data at byte 14"),
])
def test_binary_junk_is_refused(data, message):
    with pytest.raises(CloudError, match=message) as info:
        userdata.decode_user_data(b64(data))
    assert info.value.code == errors.BAD_REQUEST
