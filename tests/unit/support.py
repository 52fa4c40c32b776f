"""Helpers shared by unit tests: real small images, job ads and SSH public keys."""

import os
import subprocess

# Real public keys (no private halves exist anywhere in the project) and a small user-data script.
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKIIQRb+RTtN147yImzguA+ZJcsFCuYSvtE80Xb3bBLl alice@example.org"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDht5rSVgmAmCYI+GJpn9KMPr7JrvY/3lIJz4zEJ8IKNU9PQ0K58ClxUtgO5lYF"
       "9uWtIz48I7K04uBPauLd0/i6e3X8h5L4QgGgRXWraFGgeqgq1UzRIxeCKSWXt9q+E7wncdMOa/NkVXfAImJNvgg9rRqvx09s96uX"
       "sz0CJkXjYDgbz770p0PeDgS8BdmvitC8lfATQLn5kURKgAIOgJy0dxmIDEi4EMCsK0LbFlu0J7+T9POMvBQNThzyl58JRdSfxHBS"
       "4++YgBqt8bw0N2a2nR43oYODkZjaTQnzat/z6/m87bSsbK+KpK20o0MIJvsRIfbnX8IAyyPeYtHID9eF bob@example.org")
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNUkdayDt35W5yccWSmrxQ/YhlJxOZPxEVOyh9lUkujYS2YuKvYz2l4b8M3Gp1b46SXAPmV5YqD5oFy7VHPLlOU= carol"
SCRIPT = b"#!/bin/sh\necho \"hello from $(hostname)\" > /dev/console\n"


def make_qcow2(path, size="16M", data=None, qemu_img="qemu-img"):
    """A real qcow2 image (optionally with `data` written at offset 0, through a raw temp file)."""
    raw = str(path) + ".raw"
    with open(raw, "wb") as f:
        f.truncate(_size(size))
        if data:
            f.write(data)
    subprocess.run([qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, str(path)], check=True)
    os.unlink(raw)
    return path


def _size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def job_ad(**attrs):
    """An old-syntax job ad as a hook reads it on stdin."""
    base = {"ClusterId": 7, "ProcId": 0, "GlobalJobId": '"master#7.0#1700000000"', "Owner": '"alice"',
            "JobUniverse": 13, "JobVMType": '"kvm"', "JobVMMemory": 256, "VMPARAM_vm_Disk": '"demo.qcow2:vda:w"'}
    base.update(attrs)
    return "".join("%s = %s\n" % (k, v) for k, v in base.items() if v is not None)


def make_api_store(tmp_path):
    """An image store for the API tests: staging/, a qcow2-looking demo.qcow2 and a raw other.img (not real images:
    the API only lists names and probes headers)."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "staging").mkdir()
    (store / "demo.qcow2").write_bytes(b"QFI\xfb" + b"\0" * 1020)
    (store / "other.img").write_bytes(b"\0" * 2048)
    return store
