"""Run a role's Ansible module on this machine without ``ansible-playbook``.

For work on the runner's own machine (a local health check, a local evidence
capture) an Ansible run costs ~3 CPU-seconds for one module call. The module
file is the one home of the logic either way; here it is imported (``load``)
or run as a subprocess with its arguments file (``run``), exactly as Ansible
runs it, with the roles' ``module_utils`` made importable under
``ansible.module_utils.<name>`` as Ansible would ship them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from incident_runner.paths import roles_dir

# Executed by a fresh interpreter: register the module_utils, then run the module as main.
_BOOT = """
import importlib.util, runpy, sys
for name, path in {utils!r}.items():
    spec = importlib.util.spec_from_file_location("ansible.module_utils." + name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ansible.module_utils." + name] = mod
    spec.loader.exec_module(mod)
sys.argv = [{module!r}, {args!r}]
runpy.run_path({module!r}, run_name="__main__")
"""


def module_utils() -> dict[str, str]:
    """Every ``roles/*/module_utils/*.py`` by the name modules import it as."""
    return {p.stem: str(p) for p in sorted(roles_dir().glob("*/module_utils/*.py"))}


def register_module_utils() -> None:
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
    register_module_utils()
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - shipped files
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(path: Path, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the module with ``args`` as Ansible would; its JSON result (``failed`` on error)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        args_file = Path(handle.name)
    args_file.chmod(0o600)
    boot = _BOOT.format(utils=module_utils(), module=str(path), args=str(args_file))
    try:
        proc = subprocess.run([sys.executable, "-c", boot], capture_output=True, text=True,
                              timeout=timeout, check=False)
        lines = proc.stdout.strip().splitlines()
        out = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return {"failed": True, "msg": f"{path.stem}: {type(exc).__name__}: {exc}"}
    finally:
        args_file.unlink(missing_ok=True)
    if not isinstance(out, dict):
        return {"failed": True, "msg": f"{path.stem}: no result ({proc.stderr.strip()[:200]})"}
    return out
