"""The single exception type that the testbed raises."""

from __future__ import annotations

import subprocess


class TestbedError(Exception):
    """A testbed step failed; the message names what failed and what to do next.

    ``result`` is set when the failure is a command that ran inside an
    instance and exited non-zero, so callers can read its output.
    """

    # Keep pytest from collecting this class as a test case.
    __test__ = False

    def __init__(self, message: str, *, result: subprocess.CompletedProcess | None = None):
        super().__init__(message)
        self.result = result
