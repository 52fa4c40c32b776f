"""The image store: only whitelisted names, nothing outside the store is ever opened."""

import hashlib
import os

import pytest

from condor_cloud.core import errors, images
from condor_cloud.core.errors import CloudError

HOSTILE = ["../../etc/shadow", "/etc/shadow", "a/b", "..", ".hidden", "-rf", "a\x00b", "demo.qcow2\n", "",
           "x" * 200, "demo\u00e9.qcow2", "demo.qcow2.sha256", "staging", "a..b", " demo.qcow2"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_with_a_clear_message(name):
    with pytest.raises(CloudError) as exc:
        images.check_image_name(name)
    assert exc.value.code == errors.BAD_REQUEST
    assert "not allowed" in exc.value.message or "reserved" in exc.value.message
    assert "\x00" not in exc.value.message and "\n" not in exc.value.message


@pytest.mark.parametrize("name", ["demo.qcow2", "Fedora-Cloud-42.x86_64.qcow2", "a", "img_1+2-3.raw"])
def test_good_names_pass(name):
    assert images.check_image_name(name) == name


def test_open_reads_the_image_and_its_version(cloud):
    (cloud.store / "demo.qcow2").write_bytes(b"hello")
    with images.open_store_image(str(cloud.store), "demo.qcow2") as image:
        assert os.pread(image.fd, 5, 0) == b"hello"
        assert image.size == 5 and len(image.version) == 16 and image.sha256 == ""


def test_missing_image_message_names_image_and_store(cloud):
    with pytest.raises(CloudError) as exc:
        images.open_store_image(str(cloud.store), "foo.qcow2")
    assert exc.value.code == errors.IMAGE_NOT_FOUND
    assert exc.value.message == "image 'foo.qcow2' not found in %s" % cloud.store


def test_symlink_out_of_the_store_is_refused_without_opening_the_target(cloud):
    secret = cloud.outside / "secret"
    secret.write_text("secret")
    os.chmod(secret, 0)  # opening it would fail differently than the refusal we expect
    os.symlink(str(secret), str(cloud.store / "evil.qcow2"))
    os.symlink("../outside/secret", str(cloud.store / "evil2.qcow2"))
    for name in ("evil.qcow2", "evil2.qcow2"):
        with pytest.raises(CloudError) as exc:
            images.open_store_image(str(cloud.store), name)
        assert "points outside" in exc.value.message


def test_symlink_into_staging_is_refused(cloud):
    (cloud.store / "staging" / "half.qcow2").write_bytes(b"x")
    os.symlink("staging/half.qcow2", str(cloud.store / "alias.qcow2"))
    with pytest.raises(CloudError):
        images.open_store_image(str(cloud.store), "alias.qcow2")


def test_symlink_to_another_image_in_the_store_is_followed(cloud):
    (cloud.store / "fedora-42.qcow2").write_bytes(b"f42")
    os.symlink("fedora-42.qcow2", str(cloud.store / "fedora-latest.qcow2"))
    with images.open_store_image(str(cloud.store), "fedora-latest.qcow2") as image:
        assert os.pread(image.fd, 3, 0) == b"f42"


def test_fifo_and_directory_are_refused_without_hanging(cloud):
    os.mkfifo(str(cloud.store / "fifo.qcow2"))
    (cloud.store / "dir.qcow2").mkdir()
    for name in ("fifo.qcow2", "dir.qcow2"):
        with pytest.raises(CloudError) as exc:
            images.open_store_image(str(cloud.store), name)
        assert "not a regular file" in exc.value.message or "cannot be opened" in exc.value.message


def test_checksum_sidecar_sets_version(cloud):
    (cloud.store / "demo.qcow2").write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    (cloud.store / "demo.qcow2.sha256").write_text("%s  demo.qcow2\n" % digest)
    with images.open_store_image(str(cloud.store), "demo.qcow2") as image:
        assert image.sha256 == digest


def test_malformed_sidecar_is_an_error(cloud):
    (cloud.store / "demo.qcow2").write_bytes(b"abc")
    (cloud.store / "demo.qcow2.sha256").write_text("not a digest\n")
    with pytest.raises(CloudError) as exc:
        images.open_store_image(str(cloud.store), "demo.qcow2")
    assert exc.value.code == errors.IMAGE_INVALID


def test_replacing_an_image_changes_its_version(cloud):
    path = cloud.store / "demo.qcow2"
    path.write_bytes(b"v1")
    with images.open_store_image(str(cloud.store), "demo.qcow2") as image:
        v1 = image.version
    (cloud.store / "staging" / "demo.qcow2").write_bytes(b"v2")
    os.rename(str(cloud.store / "staging" / "demo.qcow2"), str(path))
    with images.open_store_image(str(cloud.store), "demo.qcow2") as image:
        assert image.version != v1


def test_list_images_skips_sidecars_staging_and_bad_names(cloud):
    (cloud.store / "a.qcow2").write_bytes(b"a")
    (cloud.store / "a.qcow2.sha256").write_text(hashlib.sha256(b"a").hexdigest())
    (cloud.store / ".hidden").write_bytes(b"h")
    os.symlink("/etc/passwd", str(cloud.store / "evil.qcow2"))
    assert [i.name for i in images.list_images(str(cloud.store))] == ["a.qcow2"]
