#!/usr/bin/env bash
# The five-minute demo: set up, bring the local staging stack up, break it the
# way seed 000's runbook describes (the proxy loses its app networks -> 502),
# let incident-runner fix it, and show the report. Safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# bash scripts/demo.sh --platform systemd oom: the same scenario on systemd
# hosts reached over SSH (inventories/systemd-staging; IR_PLATFORM=systemd too).
PLATFORM="${IR_PLATFORM:-docker}"
if [ "${1:-}" = --platform ]; then PLATFORM=${2:?--platform docker|systemd}; shift 2; fi
SCENARIO="${1:-proxy-502}"
INVENTORY=inventories/staging
URL=http://127.0.0.1:18080/api/health
FAULT="playbooks/faults/$SCENARIO.yml"
case "$PLATFORM" in
  docker) ;;
  systemd)
    [ $# -ge 1 ] || SCENARIO=oom
    INVENTORY=inventories/systemd-staging
    URL=http://127.0.0.1:18621/health
    FAULT="playbooks/faults/systemd-$SCENARIO.yml" ;;
  *) echo "demo: --platform: docker or systemd, not '$PLATFORM'" >&2; exit 2 ;;
esac

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

if [ "$PLATFORM" = systemd ]; then
  echo "demo: bringing a systemd host up, reached over SSH ($INVENTORY)"
  ansible-playbook playbooks/systemd_hosts.yml >/dev/null
  ansible-playbook -i "$INVENTORY" playbooks/faults/systemd-clear.yml >/dev/null
else
  # The queue scenarios (docs/queues.md) need Redis, the worker and the workflows app.
  stack_args=()
  case "$SCENARIO" in queue-*|workflow-*|credential-leak) stack_args=(-e stack_queues=true) ;; esac
  echo "demo: bringing the staging stack up (inventories/staging)"
  ansible-playbook playbooks/stack.yml "${stack_args[@]}" >/dev/null
fi
if [ ! -f "$FAULT" ]; then echo "demo: no fault playbook $FAULT" >&2; exit 2; fi
echo "demo: injecting the '$SCENARIO' fault"
ansible-playbook -i "$INVENTORY" "$FAULT" >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL" || true)
echo "demo: $URL now answers $code"

echo "demo: incident-runner remediate --scenario $SCENARIO --inventory $INVENTORY"
set +e
incident-runner remediate --scenario "$SCENARIO" --inventory "$INVENTORY" --json >/tmp/ir-demo.json
rc=$?
set -e
report=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reports"]["markdown"])' /tmp/ir-demo.json)
echo
cat "$report"
echo
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL" || true)
echo "demo: $URL now answers $code"
echo "demo: incident folder: $(dirname "$report")"
echo "demo: report: $report"
exit "$rc"
