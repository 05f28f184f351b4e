#!/usr/bin/env bash
# Installs what is missing (scripts/bootstrap.sh: a few seconds when nothing changed), then runs
# the `redisfs` CLI with the given arguments, through node directly (no pnpm: nothing of the
# command line lands in the environment). With no Redis address, redisfs uses localhost:6379 or
# starts a private redis-server. After a first run, the `redisfs` command does the same.
#
#   mkdir -p ~/redisfs && bash scripts/redisfs.sh --mount ~/redisfs --daemon
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh >&2
exec node apps/mount/dist/cli.js "$@"
