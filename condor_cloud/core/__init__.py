"""Shared by both roles (python3-condor-cloud): errors, settings, the image store's names and checks, qemu-img,
SSH public key and user-data rules. Imports nothing from condor_cloud.node or condor_cloud.master."""
