"""incident-runner: runbooks as Ansible roles, and a runner that verifies, escalates and reports."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
