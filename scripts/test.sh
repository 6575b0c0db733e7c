#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), then the linters beside pytest (unit,
# integration against the real Docker engine, molecule role scenarios and drills).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

# The linters run beside pytest, their output kept for the end: ansible-lint alone
# takes 1-3 minutes (an `ansible-playbook --syntax-check` per playbook and role),
# mostly on one core, while pytest waits on Docker and Ansible.
lint() {
  echo "test: ruff";          ruff check incident_runner tests bench roles
  echo "test: mypy";          mypy
  echo "test: yamllint";      yamllint -s .
  echo "test: ansible-lint";  ansible-lint -q --profile production roles playbooks
}
lint_log=$(mktemp)
trap 'rm -f "$lint_log"' EXIT
lint >"$lint_log" 2>&1 &
lint_pid=$!

echo "test: pytest"
# Three workers on two cores: most time is spent waiting on Docker and Ansible
# (a serial run measured 14 CPU-minutes in 23 wall-minutes). loadgroup keeps a
# module's tests (one stack) on one worker; no reorder keeps conftest's order
# (longest first) instead of xdist's "biggest group first", which started the
# drills, the longest test, 13 minutes late.
pytest_rc=0
pytest -n "${IR_TEST_WORKERS:-3}" --dist loadgroup --no-loadscope-reorder --durations=15 "$@" \
  || pytest_rc=$?

lint_rc=0
wait "$lint_pid" || lint_rc=$?
cat "$lint_log"
if [ "$lint_rc" != 0 ]; then echo "test: the linters failed (output above)" >&2; fi
if [ "$pytest_rc" != 0 ]; then echo "test: pytest failed (exit $pytest_rc)" >&2; fi
[ "$lint_rc" = 0 ] && [ "$pytest_rc" = 0 ]
