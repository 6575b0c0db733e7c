#!/usr/bin/env bash
# Idempotent: build the local image for the systemd test hosts
# (incident-runner/systemd-host:bookworm): a Debian rootfs with systemd as
# PID 1, sshd, python3, dbus and git, made with debootstrap (~80 s, cached as
# a tarball) and docker-imported. No registry is needed. Called from setup.sh.
set -euo pipefail

CACHE="${IR_CACHE:-/var/cache/incident-runner}"
IMAGE="${IR_SYSTEMD_IMAGE:-incident-runner/systemd-host:bookworm}"
DEBIAN_MIRROR="${IR_DEBIAN_MIRROR:-}"
PACKAGES=systemd,systemd-sysv,openssh-server,python3,dbus,git,iproute2,procps

docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
mkdir -p "$CACHE"
tarball="$CACHE/systemd-host-bookworm.tar"
if [ ! -s "$tarball" ]; then
  mirror=$DEBIAN_MIRROR
  [ -n "$mirror" ] || mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  rootfs="$CACHE/systemd-rootfs.tmp"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$mirror" \
    >"$CACHE/debootstrap-systemd.log" 2>&1
  # Per-host identity is made at first boot: no baked-in host keys or machine id.
  rm -f "$rootfs"/etc/ssh/ssh_host_* "$rootfs/etc/machine-id" "$rootfs"/var/cache/apt/archives/*.deb
  rm -rf "$rootfs"/var/lib/apt/lists/*
  : >"$rootfs/etc/machine-id"
  # Units that cannot work in an unprivileged container only add noise.
  for unit in systemd-udevd.service systemd-udev-trigger.service getty@tty1.service \
      systemd-logind.service console-getty.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # sshd: keys only, regenerate host keys at boot if missing.
  mkdir -p "$rootfs/etc/ssh/sshd_config.d" "$rootfs/etc/systemd/system/ssh.service.d"
  printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
    >"$rootfs/etc/ssh/sshd_config.d/incident-runner.conf"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$rootfs/etc/systemd/system/ssh.service.d/hostkeys.conf"
  tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
docker import -c 'CMD ["/sbin/init"]' \
  -c 'LABEL io.incident-runner.component=systemd-host' "$tarball" "$IMAGE" >/dev/null
