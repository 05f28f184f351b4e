#!/usr/bin/env bash
# Bootstraps the machine (installs what is missing, builds), then runs the benchmark:
#
#   bash scripts/bench.sh            # full run (several minutes, a few GiB of RAM)
#   bash scripts/bench.sh --quick    # about a minute; CI runs this
#
# Same as `pnpm bench [--quick]`. Arguments go to bench/src/cli.ts (--json FILE, --targets,
# --workloads). Exits non-zero when a workload fails its verification.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh >&2
exec node_modules/.bin/tsx --conditions=@redisfs/source bench/src/cli.ts "$@"
