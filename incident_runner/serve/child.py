"""Exec a remediation with PR_SET_PDEATHSIG: if `serve` dies (even kill -9), the runner
gets SIGTERM, stops its playbook and closes the incident as interrupted.

Usage: python -m incident_runner.serve.child PARENT_PID ARGV...
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, argv = int(sys.argv[1]), sys.argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(128 + signal.SIGTERM)
    os.execv(argv[0], argv)  # noqa: S606  (argv from serve, never a shell)


if __name__ == "__main__":
    main()
