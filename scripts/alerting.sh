#!/usr/bin/env bash
# Idempotent: install Prometheus, Alertmanager and the blackbox exporter from
# Debian for `incident-runner serve`'s tests and docs/alerts.md. Nothing is
# started or enabled here: each test starts its own instances on 127.0.0.1
# with its own config and data directories.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

want=(prometheus prometheus-alertmanager prometheus-blackbox-exporter)
missing=()
for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  apt-get update -qq
  # policy-rc.d 101: the packages' postinst must not start their daemons.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
fi
