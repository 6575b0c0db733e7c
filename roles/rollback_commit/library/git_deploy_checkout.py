#!/usr/bin/python
"""Ansible module: move a deploy checkout to a commit, recording where it was."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: git_deploy_checkout
short_description: Check out a commit in a deploy checkout and record the previous HEAD
description:
  - Writes O(record_ref) = the current HEAD (so rolling forward again is one
    command), then checks out O(commit) detached. Refuses a checkout with
    local changes to tracked files unless O(force); with O(force) those
    changes are first saved as a commit object under O(save_ref) (git stash
    create, which leaves the work tree alone) and then overwritten.
  - Every git call is an argv list; nothing goes through a shell.
  - Check mode reports the move (changed) and touches nothing. The result
    always carries C(check_mode), so later tasks can tell a check-mode run
    apart even when check mode was set by the C(check_mode) keyword rather
    than C(--check).
options:
  repo: {type: path, required: true, description: The deploy-source git checkout.}
  commit: {type: str, required: true, description: Commit to move to (any commit-ish).}
  record_ref: {type: str, required: true, description: Ref that receives the previous HEAD.}
  save_ref: {type: str, required: true, description: Ref that receives forced-over local changes.}
  force: {type: bool, default: false, description: Move even with local changes to tracked files.}
"""

RETURN = r"""
from: {description: HEAD before the move (full sha)., type: str}
to: {description: HEAD after the move (full sha)., type: str}
moved: {description: Whether HEAD moved (or would move in check mode)., type: bool}
saved_changes: {description: Commit holding the overwritten local changes, or empty., type: str}
check_mode: {description: Whether the module ran in check mode., type: bool}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "repo": {"type": "path", "required": True},
            "commit": {"type": "str", "required": True},
            "record_ref": {"type": "str", "required": True},
            "save_ref": {"type": "str", "required": True},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    git = module.get_bin_path("git", required=True)

    def run(*args: str, fail: str = "") -> str:
        rc, out, err = module.run_command([git, "-C", p["repo"], *args])
        if rc != 0:
            module.fail_json(msg=f"{fail or 'git ' + args[0]} failed: {err.strip() or out.strip()}",
                             rc=rc, cmd=["git", "-C", p["repo"], *args])
        return out.strip()

    head = run("rev-parse", "--verify", "HEAD",
               fail=f"rollback_commit_repo: {p['repo']} is not a git checkout; git rev-parse")
    target = run("rev-parse", "--verify", "--quiet", p["commit"] + "^{commit}",
                 fail=f"rollback_commit_target: {p['commit']} is not a commit in {p['repo']}")
    result = {"from": head, "to": target, "moved": head != target, "saved_changes": "",
              "check_mode": module.check_mode, "changed": head != target}
    if head == target:
        module.exit_json(msg=f"already at {target}", **result)

    dirty = run("status", "--porcelain", "--untracked-files=no").splitlines()
    if dirty and not p["force"]:
        module.fail_json(
            msg=(f"rollback_commit_force: {p['repo']} has local changes to {len(dirty)} tracked "
                 f"file(s) ({', '.join(line[3:] for line in dirty[:5])}); commit or discard them, "
                 "or set rollback_commit_force: true to save them and move anyway"),
            **result)
    if module.check_mode:
        module.exit_json(msg=f"would move {head} -> {target}", **result)

    message = f"rollback_commit: {head} -> {target}"
    if dirty:
        result["saved_changes"] = run("stash", "create", message)
        if result["saved_changes"]:
            run("update-ref", "-m", message, p["save_ref"], result["saved_changes"])
    run("update-ref", "-m", message, p["record_ref"], head)
    run("checkout", "--quiet", "--detach", *(["--force"] if dirty else []), target)
    now = run("rev-parse", "--verify", "HEAD")
    if now != target:
        module.fail_json(msg=f"checkout ended at {now}, expected {target}", **result)
    module.exit_json(msg=f"moved {head} -> {target}", **result)


if __name__ == "__main__":
    main()
