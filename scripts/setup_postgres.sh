#!/usr/bin/env bash
# Idempotent: install Debian's PostgreSQL server binaries for the shared-state
# backend and its tests (issue 16). Installs only: no cluster is created and
# nothing is started globally; the tests create and start their own cluster.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then echo "setup_postgres: run as root (apt)" >&2; exit 2; fi
if ! dpkg -s postgresql >/dev/null 2>&1; then
  apt-get update -qq
  # policy-rc.d 101: Debian's postinst would otherwise try to start the
  # packaged main cluster; we want binaries only.
  policy=/usr/sbin/policy-rc.d
  created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 0755 "$policy"; created=1; fi
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  if [ "$created" = 1 ]; then rm -f "$policy"; fi
fi
# The binaries (initdb, pg_ctl, postgres) live in a versioned directory.
ls -d /usr/lib/postgresql/*/bin >/dev/null
