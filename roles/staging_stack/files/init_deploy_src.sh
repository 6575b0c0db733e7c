#!/usr/bin/env bash
# Create the deploy-source repository from the app template: one commit,
# marked as the last good deploy for ENV (refs/deploy/good/ENV).
set -euo pipefail
template=$1 dest=$2 env=$3
mkdir -p "$dest"
cp -a "$template/." "$dest/"
cd "$dest"
git init -q -b main
git -c user.name=incident-runner -c user.email=staging@incident-runner.invalid \
  add -A
git -c user.name=incident-runner -c user.email=staging@incident-runner.invalid \
  commit -q -m "staging app: initial release"
git update-ref "refs/deploy/good/$env" HEAD
