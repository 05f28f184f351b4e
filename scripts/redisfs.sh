#!/usr/bin/env bash
# Installs what is missing (scripts/bootstrap.sh), then runs the `redisfs` CLI with the given
# arguments. With no Redis address, redisfs uses localhost:6379 or starts a private redis-server.
#
#   mkdir -p ~/redisfs && bash scripts/redisfs.sh --mount ~/redisfs --daemon
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh >&2
exec node apps/mount/dist/cli.js "$@"
