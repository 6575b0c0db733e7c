#!/bin/bash
# Bring hosts PREFIX-1..COUNT up at once (at most PARALLEL in flight): start the
# container if it is not running, copy the units, the install script and the
# app in, provision it (provision.sh) and print "I <host key>" per host.
# Idempotent. Called by tasks/present.yml with argv (no shell string).
# Usage: make_hosts.sh PREFIX COUNT IMAGE SSH_BASE APP_BASE FILES_DIR APP_SRC ENV MEMORY_MAX
#                      PUBKEY_FILE PARALLEL
set -euo pipefail
prefix=$1 count=$2 image=$3 ssh_base=$4 app_base=$5 files=$6 app_src=$7 env=$8
memory_max=$9 pubkey_file=${10} parallel=${11}
pubkey=$(cat "$pubkey_file")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

one() {
  local i=$1 name="$prefix-$1"
  if ! docker container inspect "$name" >/dev/null 2>&1; then
    # Unprivileged (--privileged is refused here): systemd as PID 1 needs /run and
    # /run/lock as tmpfs and the cgroup tree.
    docker run -d --name "$name" --hostname "$name" \
      --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
      -p "127.0.0.1:$((ssh_base + i)):22" -p "127.0.0.1:$((app_base + i)):8080" \
      --label "io.incident-runner.systemd-hosts=$prefix" "$image" /sbin/init >/dev/null
  else
    docker start "$name" >/dev/null
  fi
  docker cp "$files/host/." "$name:/"
  # Not under /tmp: systemd mounts a fresh tmpfs there while it boots.
  docker cp "$app_src" "$name:/usr/local/share/ir-app.py"
  docker exec -i "$name" /bin/bash -s -- "$env" "$memory_max" "$pubkey" \
    <"$files/provision.sh" >"$out/$i.log" 2>&1
  echo "$i $(tail -n 1 "$out/$i.log" | cut -d' ' -f1-2)" >"$out/$i.key"
}

running=0
for i in $(seq 1 "$count"); do
  if [ "$running" -ge "$parallel" ]; then
    wait -n || true  # a failed host is reported below
    running=$((running - 1))
  fi
  one "$i" &
  running=$((running + 1))
done
wait || true
for i in $(seq 1 "$count"); do
  [ -s "$out/$i.key" ] || { echo "host $prefix-$i was not provisioned:" >&2; cat "$out/$i.log" >&2 || true; exit 1; }
  cat "$out/$i.key"
done
