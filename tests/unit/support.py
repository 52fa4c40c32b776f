"""Helpers shared by unit tests: real small images and job ads."""

import os
import subprocess


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
