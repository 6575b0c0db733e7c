"""Callback: in check mode, record what could not be checked.

Enabled by the executor (``ANSIBLE_CALLBACKS_ENABLED``) for check-mode runs
only; writes JSON lines to ``$IR_CHECK_IMPACT_FILE`` (in the run's private
data dir):

- ``unchecked``: a task Ansible skipped because it cannot run in check mode
  (a module without check-mode support, ``command``/``shell`` without
  ``creates``/``removes``). Its impact is unknown, never "safe".
- ``forced``: a task with ``check_mode: false`` that reported a change: it
  ran for real in a dry run.

Skips for a false condition or an empty loop are not recorded: nothing would
have run for real either.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: incident_runner_check
type: aggregate
short_description: record tasks whose impact a check-mode run could not show
description:
  - Writes one JSON line per unchecked or forced task to $IR_CHECK_IMPACT_FILE.
requirements:
  - enabled via ANSIBLE_CALLBACKS_ENABLED by incident-runner
"""

FILE_ENV = "IR_CHECK_IMPACT_FILE"


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "incident_runner_check"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = os.environ.get(FILE_ENV)

    def _write(self, kind: str, result: Any, res: dict[str, Any], reason: str) -> None:
        if not self._path:
            return
        task = result._task
        looped = "item" in res or "_ansible_item_label" in res
        record = {
            "kind": kind, "task": task.get_name(), "host": result._host.get_name(),
            "action": task.action, "reason": reason[:300], "task_uuid": task._uuid,
            "item": str(res.get("_ansible_item_label", res.get("item", ""))) if looped else None,
        }
        with open(self._path, "a", encoding="utf-8") as handle:  # noqa: PTH123
            handle.write(json.dumps(record, default=str) + "\n")

    def _skipped(self, result: Any) -> None:
        res = result._result if isinstance(result._result, dict) else {}
        if res.get("skip_reason") or res.get("skipped_reason") or "false_condition" in res:
            return  # a false condition or an empty loop: it would not run for real either
        if "results" in res:
            return  # a loop: every item was reported on its own
        self._write("unchecked", result, res,
                    str(res.get("msg") or "skipped in check mode (no check-mode support)"))

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._skipped(result)

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        self._skipped(result)

    def _ok(self, result: Any) -> None:
        res = result._result if isinstance(result._result, dict) else {}
        if res.get("changed") and result._task.check_mode is False:
            self._write("forced", result, res, "check_mode: false - ran for real and changed")

    def v2_runner_on_ok(self, result: Any) -> None:
        if "results" not in result._result:
            self._ok(result)

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._ok(result)
