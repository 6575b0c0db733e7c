"""Run a role's Ansible module on this machine without ``ansible-playbook``.

For work on the runner's own machine (a local health check, a local evidence
capture) an Ansible run costs ~3 CPU-seconds for one module call. The module
file is the one home of the logic either way; here it is imported (``load``)
and its entry function called with arguments checked against its
``ARGUMENT_SPEC`` as ``AnsibleModule`` checks them (``call``), with the roles'
``module_utils`` made importable under ``ansible.module_utils.<name>`` as
Ansible would ship them. In-process: a subprocess costs ~0.2 s of interpreter
start-up and imports per call.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from incident_runner.paths import roles_dir


def module_utils() -> dict[str, str]:
    """Every ``roles/*/module_utils/*.py`` by the name modules import it as."""
    return {p.stem: str(p) for p in sorted(roles_dir().glob("*/module_utils/*.py"))}


# The symptom check and the evidence capture load modules from two threads at once: a
# module_utils entry is in sys.modules before it has run, so loading is one at a time.
_LOADING = threading.Lock()


def _register_module_utils() -> None:
    for name, path in module_utils().items():
        full = f"ansible.module_utils.{name}"
        if full in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(full, path)
        if spec is None or spec.loader is None:  # pragma: no cover - shipped files
            continue
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)


def load(path: Path, name: str) -> ModuleType:
    """Import a module file (its functions, not its ``main``)."""
    with _LOADING:
        _register_module_utils()
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - shipped files
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def call(path: Path, function: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call the module's ``function`` with ``args`` validated as ``AnsibleModule`` would
    (the module's ``ARGUMENT_SPEC``: types, defaults, required), in this process. Its
    result dict; ``failed`` with the message on bad arguments or an error it raises."""
    from ansible.module_utils.common.arg_spec import (  # noqa: PLC0415 (slow to import)
        ArgumentSpecValidator,
    )

    module = load(path, f"incident_runner_{path.stem}")
    checked = ArgumentSpecValidator(module.ARGUMENT_SPEC).validate(args)
    if checked.error_messages:
        return {"failed": True, "msg": f"{path.stem}: {'; '.join(checked.error_messages)}"}
    try:
        result: dict[str, Any] = getattr(module, function)(checked.validated_parameters)
    except Exception as exc:  # the module's own error (CaptureError...): a failed result
        return {"failed": True, "msg": f"{path.stem}: {exc}"}
    return result
