#!/usr/bin/env bash
# Bootstraps the machine (installs what is missing, builds), then runs every vitest project:
# unit tests and e2e tests (real redis-server, real FUSE mounts of the built CLIs).
#
#   bash scripts/test.sh                     # everything (same as `pnpm test`)
#   bash scripts/test.sh e2e/cli.test.ts     # arguments go to `vitest run`
#
# Exits with vitest's exit code, after a closing line "vitest: N passed, N failed, N skipped".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh

# bootstrap.sh may have installed pnpm where another pnpm shadows it on PATH.
pnpm_want="$(node -p 'require("./package.json").packageManager.slice(5).split("+")[0]')"
if [[ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_want" ]]; then
  PATH="$(npm prefix -g 2>/dev/null)/bin:$PATH"
fi

report="$(mktemp -t redisfs-vitest-XXXXXX.json)"
trap 'rm -f "$report"' EXIT

echo "[test] pnpm exec vitest run $*"
set +e
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
code=$?
set -e

# A plain closing line, whatever reporter is in use above.
node -e '
  const fs = require("node:fs");
  const code = Number(process.argv[2]);
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { r = undefined; }
  if (!r) { console.log(`vitest: 0 passed, ${code === 0 ? 0 : 1} failed`); process.exit(0); }
  let failed = r.numFailedTests;
  // A file that failed to load (e.g. a missing prerequisite under CI) has no failed test.
  if (code !== 0 && failed === 0) failed = Math.max(1, r.numFailedTestSuites);
  console.log(`vitest: ${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" "$code"

# Under CI, a skipped test is a failure unless scripts/ci-allowed-skips.txt names it: a missing
# prerequisite (FUSE, redis-server, root) must not let a run pass by not testing.
if [[ $code -eq 0 ]] && [[ -n "${CI:-}" && "${CI}" != "0" && "${CI,,}" != "false" ]]; then
  set +e
  node -e '
    const fs = require("node:fs");
    const path = require("node:path");
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const allowed = new Set(fs.readFileSync(process.argv[2], "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")));
    const skipped = [];
    for (const file of r.testResults) {
      for (const t of file.assertionResults) {
        if (!["skipped", "pending", "todo"].includes(t.status)) continue;
        const name = `${path.relative(process.cwd(), file.name)} > ${t.fullName}`;
        if (!allowed.has(name)) skipped.push(name);
      }
    }
    if (skipped.length > 0) {
      console.log(`CI: ${skipped.length} test(s) skipped that scripts/ci-allowed-skips.txt does not allow:`);
      for (const s of skipped) console.log(`  ${s}`);
      process.exit(1);
    }
  ' "$report" scripts/ci-allowed-skips.txt
  code=$?
  set -e
fi

exit "$code"
