#!/bin/bash
# Runs inside a fresh systemd host (docker exec, as root): waits for systemd,
# makes the app's deploy origin (/srv/app.git, real history,
# refs/deploy/good/<env>) and checkout (/srv/app), installs the units, starts
# them and prints the host's SSH public key. Idempotent.
# Usage: provision.sh ENV MEMORY_MAX AUTHORIZED_KEY  (app.py in /usr/local/share/ir-app.py; the units and
# /usr/local/sbin/ir-app-install were copied from files/host/)
set -euo pipefail
env=$1 memory_max=$2 authorized_key=$3

for _ in $(seq 1 300); do
  case "$(systemctl is-system-running 2>/dev/null || true)" in running|degraded) break ;; esac
  sleep 0.1
done

install -d -m 0700 /root/.ssh
printf '%s\n' "$authorized_key" >/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

git_() { git -c user.name=incident-runner -c user.email=incident-runner@localhost "$@"; }
if [ ! -d /srv/app.git ]; then
  git init -q --bare -b main /srv/app.git
  work=$(mktemp -d)
  git_ -C "$work" init -q -b main
  cp /usr/local/share/ir-app.py "$work/app.py"
  printf '{"healthy": true, "reason": ""}\n' >"$work/release.json"
  git_ -C "$work" add app.py release.json
  git_ -C "$work" commit -q -m "app: first release"
  printf '{"healthy": true, "reason": "", "notes": "release 2"}\n' >"$work/release.json"
  git_ -C "$work" commit -q -am "release: 2"
  git_ -C "$work" push -q /srv/app.git HEAD:refs/heads/main "HEAD:refs/deploy/good/$env"
  rm -rf "$work"
  git clone -q /srv/app.git /srv/app
  /usr/local/sbin/ir-app-install "refs/deploy/good/$env"
fi
rm -f /usr/local/share/ir-app.py

sed -i "s/^MemoryMax=.*/MemoryMax=$memory_max/" /etc/systemd/system/ir-app.service
systemctl daemon-reload
systemctl enable -q --now ir-deps.service ir-app.service
for _ in $(seq 1 100); do
  python3 -c 'import urllib.request as u; u.urlopen("http://127.0.0.1:8080/health", timeout=1)' 2>/dev/null && break
  sleep 0.1
done
cat /etc/ssh/ssh_host_ed25519_key.pub
