#!/usr/bin/env bash
# The five-minute demo: set up, bring the local staging stack up, break it the
# way seed 000's runbook describes (the proxy loses its app networks -> 502),
# let incident-runner fix it, and show the report. Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCENARIO="${1:-proxy-502}"

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

# The queue scenarios (docs/queues.md) need Redis, the worker and the workflows app.
stack_args=()
case "$SCENARIO" in queue-*|workflow-*|credential-leak) stack_args=(-e stack_queues=true) ;; esac
echo "demo: bringing the staging stack up (inventories/staging)"
ansible-playbook playbooks/stack.yml "${stack_args[@]}" >/dev/null
echo "demo: injecting the '$SCENARIO' fault"
ansible-playbook "playbooks/faults/$SCENARIO.yml" >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/api/health || true)
echo "demo: through the proxy /api/health now answers $code"

echo "demo: incident-runner remediate --scenario $SCENARIO --inventory inventories/staging"
set +e
incident-runner remediate --scenario "$SCENARIO" --inventory inventories/staging --json >/tmp/ir-demo.json
rc=$?
set -e
report=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reports"]["markdown"])' /tmp/ir-demo.json)
echo
cat "$report"
echo
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/api/health || true)
echo "demo: through the proxy /api/health now answers $code"
echo "demo: incident folder: $(dirname "$report")"
echo "demo: report: $report"
exit "$rc"
