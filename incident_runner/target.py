"""What an incident acts on, resolved from the inventory in the runner's own process.

The runner needs the inventory's variables before any playbook runs: to
template the health checks it makes itself (``{{ stack_url }}/api/health``) and
to know the target's identity. Loading the inventory through Ansible's own API
costs about half a CPU-second, once per incident; an ``ansible-inventory``
subprocess costs twice that.

Identity (``Target.key``): inventory environment + host + the stack's project +
the services acted on. The flap guard counts and the locks are taken on these
keys, so two stacks sharing a state dir never block each other, and drills
(prefixed ``drill:``) never count against real targets.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from incident_runner.errors import InputError
from incident_runner.scenario import Scenario

LOG = logging.getLogger(__name__)

# Inventory variables naming the environment and the project (a compose project
# or its equivalent on another platform); the first one defined wins.
ENVIRONMENT_VARS = ("incident_runner_environment", "stack_env")
PROJECT_VARS = ("incident_runner_project", "stack_project")


@dataclass(frozen=True)
class Target:
    inventory: Path
    pattern: str
    hosts: tuple[str, ...]
    services: tuple[str, ...]
    environment: str
    project: str
    drill: bool = False
    variables: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _templar: Any = field(default=None, compare=False, repr=False)
    # host -> its templar (fleet mode renders per-host checks with each host's variables)
    _host_templar: Any = field(default=None, compare=False, repr=False)

    def _prefix(self, host: str) -> str:
        scope = "drill:" if self.drill else ""
        project = f"/{self.project}" if self.project else ""
        return f"{scope}{self.environment}/{host}{project}"

    @property
    def key(self) -> str:
        """The flap guard's key: everything this incident acts on."""
        hosts = ",".join(self.hosts) or "-"
        return f"{self._prefix(hosts)}:{','.join(self.services) or self.pattern}"

    def lock_keys(self, override: str | None = None) -> list[str]:
        """One lock per host and service (sorted: taken in order, so no deadlock)."""
        if override:
            return [f"{self._prefix('-')}:{override}"]
        services = sorted(set(self.services)) or [self.pattern]
        return sorted(f"{self._prefix(h)}:{s}" for h in (self.hosts or ("-",)) for s in services)

    def host_key(self, host: str) -> str:
        """The flap guard's key for one host of a fleet (what a ``--limit HOST`` run has)."""
        return f"{self._prefix(host)}:{','.join(self.services) or self.pattern}"

    def host_lock_keys(self, host: str, override: str | None = None) -> list[str]:
        """The lock keys of one host: one per service (or the scenario's ``lock``)."""
        services = [override] if override else (sorted(set(self.services)) or [self.pattern])
        return sorted(f"{self._prefix(host)}:{s}" for s in services)

    def template_for(self, host: str, value: Any) -> Any:
        """``template`` with ``host``'s variables (per-host checks of a fleet)."""
        if not isinstance(value, str) or "{{" not in value:
            return value
        if self._host_templar is None or (self.hosts and host == self.hosts[0]):
            return self.template(value)
        return replace(self, _templar=self._host_templar(host)).template(value)

    def template(self, value: Any) -> Any:
        """Render an inventory-side template (a scenario's check URL) with the host's vars."""
        if self._templar is None or not isinstance(value, str) or "{{" not in value:
            return value
        from ansible.template import trust_as_template  # noqa: PLC0415 (ansible is slow to import)

        try:
            return self._templar.template(trust_as_template(value))
        except Exception as exc:  # AnsibleError and friends: an undefined variable, a typo
            raise InputError(f"cannot render '{value[:80]}': {str(exc).splitlines()[0][:160]}",
                             source=str(self.inventory), field="inventory variables") from None


def _first(variables: dict[str, Any], names: tuple[str, ...], default: str) -> str:
    for name in names:
        value = variables.get(name)
        if isinstance(value, str) and value:
            return value
    return default


def resolve_target(inventory: Path, scenario: Scenario, *, limit: str | None = None,
                   extra_vars: dict[str, Any] | None = None, drill: bool = False,
                   vault_password_file: Path | None = None) -> Target:
    """Load ``inventory``, select the scenario's hosts (and ``--limit``), render identity vars."""
    # A pattern matching nothing is our one-line input error below, not Ansible's warnings.
    os.environ.setdefault("ANSIBLE_HOST_PATTERN_MISMATCH", "ignore")
    os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")
    from ansible.errors import AnsibleError  # noqa: PLC0415
    from ansible.inventory.manager import InventoryManager  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415
    from ansible.template import Templar  # noqa: PLC0415
    from ansible.vars.hostvars import HostVars  # noqa: PLC0415
    from ansible.vars.manager import VariableManager  # noqa: PLC0415

    loader = DataLoader()
    if vault_password_file is not None:
        from incident_runner.secrets import vault_secret  # noqa: PLC0415

        loader.set_vault_secrets([("default", vault_secret(vault_password_file))])
    try:
        manager = InventoryManager(loader=loader, sources=[str(inventory)])
        if limit:
            manager.subset(limit)
        hosts = manager.get_hosts(scenario.hosts)
    except AnsibleError as exc:
        raise InputError(f"cannot read the inventory: {str(exc).splitlines()[0][:200]}",
                         source=str(inventory), field="--inventory") from None
    if not hosts:
        where = f"'{scenario.hosts}'" + (f" limited to '{limit}'" if limit else "")
        raise InputError(f"no host of the inventory matches {where}",
                         source=str(inventory), field="--limit" if limit else "targets.hosts")
    manager_vars = VariableManager(loader=loader, inventory=manager)
    # As ansible-playbook does: without it `hostvars` is not a variable.
    manager_vars._hostvars = HostVars(inventory=manager, variable_manager=manager_vars,
                                      loader=loader)
    try:
        # hostvars and groups too: a check may name another host's variable
        # ({{ hostvars[groups[target_hosts] | first].systemd_app_url }}).
        variables = dict(manager_vars.get_vars(host=hosts[0], include_hostvars=True))
    except AnsibleError as exc:
        raise InputError(f"cannot read the inventory's variables: "
                         f"{str(exc).splitlines()[0][:200]}", source=str(inventory),
                         field="--inventory") from None
    variables["target_hosts"] = scenario.hosts  # as in the runner's plays (plays.py base vars)
    variables.update(extra_vars or {})  # -e wins, as in ansible-playbook; as data, never templated
    templar = Templar(loader=loader, variables=variables)
    partial = Target(inventory=inventory, pattern=scenario.hosts, hosts=(), services=(),
                     environment="", project="", _templar=templar)
    # Without a declared environment the inventory itself is the identity (its path).
    environment = str(partial.template(_first(variables, ENVIRONMENT_VARS, str(inventory))))
    project = str(partial.template(_first(variables, PROJECT_VARS, "")))
    by_name = {h.name: h for h in hosts}

    @cache
    def host_templar(name: str) -> Any:
        """A templar over ``name``'s variables, as for the first host (made when needed)."""
        try:
            own = dict(manager_vars.get_vars(host=by_name[name], include_hostvars=True))
        except AnsibleError as exc:
            raise InputError(f"cannot read the variables of {name}: "
                             f"{str(exc).splitlines()[0][:200]}", source=str(inventory),
                             field="--inventory") from None
        own["target_hosts"] = scenario.hosts
        own.update(extra_vars or {})
        return Templar(loader=loader, variables=own)

    return Target(
        inventory=inventory, pattern=scenario.hosts, hosts=tuple(h.name for h in hosts),
        services=scenario.services, environment=environment, project=project, drill=drill,
        variables=variables, _templar=templar, _host_templar=host_templar,
    )
