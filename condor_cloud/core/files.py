"""Small file helpers both roles need."""

import os


def fsync_dir(path):
    """Make a rename in directory path durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
