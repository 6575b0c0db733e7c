#!/usr/bin/env bash
# Make the stack directory and, on first bring-up, the deploy-source repository
# from the app template: one commit, marked as the last good deploy for ENV
# (refs/deploy/good/ENV). Prints "seeded" when it created the repository, then
# the deployed commit (HEAD). With CHECK=True (check mode) it creates nothing.
# One script, not three tasks: each Ansible module call costs ~0.3-0.6 s here.
set -euo pipefail
template=$1 dest=$2 env=$3 stack_dir=$4 check=${5:-False}
if [[ ! -d "$dest/.git" ]]; then
  if [[ "$check" == True ]]; then
    echo seeded
    exit 0
  fi
  mkdir -p "$stack_dir" "$dest"
  chmod 0750 "$stack_dir"
  cp -a "$template/." "$dest/"
  cd "$dest"
  git init -q -b main
  git -c user.name=incident-runner -c user.email=staging@incident-runner.invalid \
    add -A
  git -c user.name=incident-runner -c user.email=staging@incident-runner.invalid \
    commit -q -m "staging app: initial release"
  git update-ref "refs/deploy/good/$env" HEAD
  echo seeded
fi
git -C "$dest" rev-parse HEAD
