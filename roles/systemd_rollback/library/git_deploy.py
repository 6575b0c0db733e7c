#!/usr/bin/python
"""Ansible module: roll a git checkout back to the good commit of an env and reinstall."""

from __future__ import annotations

import subprocess
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: git_deploy
short_description: Check out refs/deploy/good/ENV in a deploy checkout and reinstall it
description:
  - Fetches the checkout's origin (branches and refs/deploy/*), resolves
    refs/deploy/good/ENV and, when the checkout's HEAD is another commit,
    runs the install command with that commit as its last argument (it checks
    the commit out and installs it). Changes nothing when HEAD is already the
    good commit. Fails with "no good commit recorded for env ENV" when the ref
    is missing. Supports check mode (fetches nothing, reports what it would do).
options:
  repo: {type: path, required: true, description: The deploy checkout.}
  env: {type: str, required: true, description: Environment (refs/deploy/good/ENV).}
  install:
    {type: list, elements: str, required: true, description: Install argv + the commit.}
  fetch: {type: bool, default: true, description: Fetch from origin first.}
"""

RETURN = r"""
before: {type: str, description: Commit deployed before.}
after: {type: str, description: Commit deployed after (the good commit when changed).}
good: {type: str, description: The good commit of the env.}
"""


def git(module: AnsibleModule, repo: str, *args: str) -> tuple[int, str, str]:
    rc, out, err = module.run_command(["git", "-C", repo, *args])
    return rc, out.strip(), err.strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "repo": {"type": "path", "required": True},
            "env": {"type": "str", "required": True},
            "install": {"type": "list", "elements": "str", "required": True},
            "fetch": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    repo, ref = p["repo"], f"refs/deploy/good/{p['env']}"
    if p["fetch"] and not module.check_mode:
        rc, _, err = git(module, repo, "fetch", "-q", "origin",
                         "+refs/heads/*:refs/remotes/origin/*", "+refs/deploy/*:refs/deploy/*")
        if rc:
            module.fail_json(msg=f"systemd_rollback_repo: git fetch in {repo} failed: {err}")
    rc, before, err = git(module, repo, "rev-parse", "--verify", "HEAD")
    if rc:
        module.fail_json(msg=f"systemd_rollback_repo: {repo} is not a git checkout: {err}")
    if module.check_mode:  # the good commit as origin has it, without fetching
        rc, out, _ = git(module, repo, "ls-remote", "origin", ref)
        good = out.split()[0] if rc == 0 and out else ""
        if not good:
            rc, good, _ = git(module, repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    else:
        rc, good, _ = git(module, repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    if not good:
        module.fail_json(
            msg=f"no good commit recorded for env {p['env']} ({ref} missing in {repo})")
    result: dict[str, Any] = {"changed": before != good, "before": before, "after": good,
                              "good": good}
    if result["changed"] and not module.check_mode:
        try:
            proc = subprocess.run([*p["install"], good], capture_output=True, text=True,
                                  check=False, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            module.fail_json(msg=f"systemd_rollback_install: {exc}", **result)
        if proc.returncode:
            module.fail_json(msg=f"systemd_rollback_install: exit {proc.returncode}: "
                                 f"{proc.stderr.strip()[-300:]}", **result)
        rc, after, _ = git(module, repo, "rev-parse", "HEAD")
        if after != good:
            module.fail_json(msg=f"systemd_rollback_install: HEAD is {after}, not {good}", **result)
        result["after"] = after
    module.exit_json(**result)


if __name__ == "__main__":
    main()
