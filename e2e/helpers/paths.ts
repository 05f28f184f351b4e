/** Where the built CLIs live: the e2e suite runs them exactly as a user would, from dist/. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The monorepo root. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `redisfs` (apps/mount), built by `pnpm build`. */
export const MOUNT_CLI = join(REPO_ROOT, 'apps/mount/dist/cli.js');

/** `redisfs-snapshot` (apps/snapshot), built by `pnpm build`. */
export const SNAPSHOT_CLI = join(REPO_ROOT, 'apps/snapshot/dist/cli.js');

/** Fails with a hint when a CLI has not been built (a build product is never skipped over). */
export function requireBuilt(cli: string): string {
  if (!existsSync(cli)) {
    throw new Error(`${cli} does not exist: run \`pnpm build\` (or \`bash scripts/test.sh\`, which builds first)`);
  }
  return cli;
}
