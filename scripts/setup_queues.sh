#!/usr/bin/env bash
# Idempotent set-up of the staging queue stack's images (no registry: built
# locally on incident-runner/base:bookworm):
#   incident-runner/redis:bookworm   Debian's redis-server binary + its libraries
#   incident-runner/bullmq:bookworm  the official BullMQ client for Python,
#                                    installed from wheels downloaded on the host
# Called from scripts/setup.sh after the base image exists; safe to run again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${IR_VENV:-$ROOT/.venv}"
export DEBIAN_FRONTEND=noninteractive
BULLMQ_VERSION="${IR_BULLMQ_VERSION:-3.4.4}"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

redis_image() {
  image_exists incident-runner/redis:bookworm && return 0
  if ! dpkg -s redis-server >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  local ctx bin lib
  ctx=$(mktemp -d)
  bin=$(readlink -f /usr/bin/redis-server)
  mkdir -p "$ctx/lib"
  cp "$bin" "$ctx/redis-server"
  # Its shared libraries, except the C runtime the base image already has.
  for lib in $(ldd "$bin" | awk '/=> \//{print $3}'); do
    case "$(basename "$lib")" in
      libc.so.*|libm.so.*|ld-linux*|libgcc_s.so.*|libstdc++.so.*) ;;
      *) cp -L "$lib" "$ctx/lib/" ;;
    esac
  done
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM incident-runner/base:bookworm
COPY lib/ /usr/local/lib/ir-redis/
COPY redis-server /usr/bin/redis-server
ENV LD_LIBRARY_PATH=/usr/local/lib/ir-redis
LABEL io.incident-runner.component=redis
EXPOSE 6379
CMD ["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
DOCKERFILE
  DOCKER_BUILDKIT=0 /usr/bin/docker build -q -t incident-runner/redis:bookworm "$ctx" >/dev/null 2>&1
  rm -rf "$ctx"
}

bullmq_image() {
  image_exists "incident-runner/bullmq:bookworm" && return 0
  local ctx
  ctx=$(mktemp -d)
  # The base image has python3 but no pip: install on the host into a target
  # directory (same Python 3.11 and libc as bookworm) and copy that in.
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 -d "$ctx/wheels" "bullmq==$BULLMQ_VERSION" \
    async-timeout  # redis-py needs it below Python 3.11.3 (bookworm has 3.11.2)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-index \
    --target "$ctx/site" "$ctx"/wheels/*.whl
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM incident-runner/base:bookworm
COPY site/ /opt/bullmq/
ENV PYTHONPATH=/opt/bullmq
LABEL io.incident-runner.component=bullmq
DOCKERFILE
  DOCKER_BUILDKIT=0 /usr/bin/docker build -q -t incident-runner/bullmq:bookworm "$ctx" >/dev/null 2>&1
  rm -rf "$ctx"
}

redis_image
bullmq_image
