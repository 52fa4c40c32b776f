"""The harness's exceptions."""


class SandboxError(Exception):
    """The sandbox could not be made, run or undone (the message says what failed and shows its output)."""


class WaitTimeout(SandboxError, AssertionError):
    """wait.wait_for gave up.  A SandboxError for the harness's callers, and an AssertionError so that pytest reports
    a test that waited in vain as failed, not as errored.  last: the probe's last value."""

    def __init__(self, message, last=None):
        super().__init__(message)
        self.last = last
