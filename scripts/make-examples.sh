#!/usr/bin/env bash
# Regenerate examples/incident-report/ from a real run: bring up a throw-away staging
# stack (own compose project and port), inject the proxy-502 fault, run the
# real `incident-runner remediate`, and copy what the tool produced (Markdown
# post-mortem, HTML report, JSON journal, messages, timeline) into
# examples/incident-report/. Nothing in there is written by hand.
#
#   bash scripts/make-examples.sh            # project ir-c2-examples, first free port 18510-18599
#   IR_EXAMPLES_PROJECT=... IR_EXAMPLES_PORT=... bash scripts/make-examples.sh
#
# The stack is torn down on exit, whatever happens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROJECT="${IR_EXAMPLES_PROJECT:-ir-c2-examples}"
SCENARIO=proxy-502
OUT="$ROOT/examples/incident-report"
WORK="/tmp/$PROJECT"   # stable path: it is printed in the report's Targets line

# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_NOCOLOR=1

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${IR_EXAMPLES_PORT:-}"
if [[ -z "$PORT" ]]; then
  for p in $(seq 18510 18599); do
    if port_free "$p"; then PORT=$p; break; fi
  done
fi
[[ -n "$PORT" ]] || { echo "make-examples: no free port in 18510-18599" >&2; exit 1; }

# An inventory for this stack: the staging inventory plus our project, port and dir.
INV="$WORK/inventory"
rm -rf "$WORK"
mkdir -p "$INV/group_vars/all" "$WORK/incidents"
cp inventories/staging/hosts.yml "$INV/hosts.yml"
cp inventories/staging/group_vars/all.yml "$INV/group_vars/all/00-staging.yml"
cat >"$INV/group_vars/all/10-examples.yml" <<EOF
---
stack_project: $PROJECT
stack_http_port: $PORT
stack_dir: $WORK/stack
EOF

teardown() {
  echo "make-examples: tearing down $PROJECT"
  ansible-playbook -i "$INV" playbooks/stack.yml -e stack_state=absent >/dev/null || true
}
trap teardown EXIT

status() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/health" || true; }

echo "make-examples: bringing up $PROJECT on 127.0.0.1:$PORT"
ansible-playbook -i "$INV" playbooks/stack.yml >/dev/null
echo "make-examples: /api/health answers $(status)"

echo "make-examples: injecting the $SCENARIO fault"
if [[ -f "playbooks/faults/$SCENARIO.yml" ]]; then
  ansible-playbook -i "$INV" "playbooks/faults/$SCENARIO.yml" >/dev/null
else  # fallback until the fault playbook exists: the same fault by hand
  for net in api_net web_net; do
    docker network disconnect "${PROJECT}_${net}" "${PROJECT}-proxy-1"
  done
fi
echo "make-examples: /api/health answers $(status)"

echo "make-examples: incident-runner remediate --scenario $SCENARIO"
set +e
incident-runner --state-dir "$WORK/incidents" remediate --scenario "$SCENARIO" \
  --inventory "$INV" --json >"$WORK/summary.json"
rc=$?
set -e
echo "make-examples: remediate exited $rc; /api/health answers $(status)"
if [[ $rc -ne 0 ]]; then
  cat "$WORK/summary.json" >&2
  echo "make-examples: the remediation did not resolve; examples left unchanged" >&2
  exit "$rc"
fi

incident_dir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dir"])' \
  "$WORK/summary.json")
find "$OUT" -maxdepth 1 -type f ! -name README.md -delete 2>/dev/null || true  # keep the README
mkdir -p "$OUT"
cp "$incident_dir"/*.md "$incident_dir/report.html" "$incident_dir/report.json" \
  "$incident_dir/messages.json" "$incident_dir/timeline.jsonl" "$OUT/"
chmod 0644 "$OUT"/*
echo "make-examples: wrote $(cd "$OUT" && ls | tr '\n' ' ')to ${OUT#"$ROOT"/}"
