/**
 * The command line of `redisfs upgrade` (the arguments after `upgrade`): yargs parses, a zod
 * schema validates, and every problem becomes one UsageError line. Values are never echoed back:
 * a --url may hold a password.
 */
import { z } from 'zod';
import { firstIssueMessage, prefixSchema, redisTargetShape, resolveRedisTarget, redisTargetFlagsOf, UsageError } from '@redisfs/cli-common';
import { prefixSubcommandParser } from './subcommand-parser.js';

/** A validated upgrade command line. */
export interface UpgradeConfig {
  prefix: string;
  /** Redis URL from --url, --host/--port or REDISFS_URL; undefined with the socket or the default server. */
  url: string | undefined;
  socket: string | undefined;
}

/** What the command line asks for: an upgrade, or nothing more (help or version was printed). */
export type UpgradeCommand = { kind: 'upgrade'; config: UpgradeConfig } | { kind: 'done' };

const argsSchema = z.object({ prefix: prefixSchema('--prefix'), ...redisTargetShape });

function buildParser(args: string[]) {
  return prefixSubcommandParser('upgrade', args, {
    usage:
      '$0 --prefix P [options]\n\n' +
        'Convert the redisfs filesystem under --prefix from layout 1 or 2 (older redisfs versions) to layout 3, in place: ' +
        'each inode moves into a packed record, its data blocks stay where they are (from layout 1: each file gets its ' +
        'block map, and the blocks layout 1 had not deleted yet go). Unmount it first (everywhere). Safe to stop at any ' +
        'point: run it again to resume.',
    epilogue:
      'Exit codes: 0 upgraded, or already layout 3; 1 failure (Redis unreachable, no filesystem at --prefix, ' +
        'mounted, a snapshot of it in progress, a layout it does not convert); 2 usage error. Each snapshot or clone ' +
        'is upgraded on its own, with its own --prefix: skx@mon (layout 2), skx.Mon (a snapshot taken with layout 1).',
  });
}

/**
 * Parses and validates the arguments of `redisfs upgrade` (those after `upgrade`). Help and
 * version are printed by yargs and give `{ kind: 'done' }`. Every problem is a one-line UsageError.
 */
export async function parseUpgradeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<UpgradeCommand> {
  const argv = await buildParser(args).parseAsync();
  if (argv.help || argv.version) return { kind: 'done' };
  const parsed = argsSchema.safeParse({ prefix: argv.prefix, ...redisTargetFlagsOf(argv) });
  if (!parsed.success) throw new UsageError(firstIssueMessage(parsed.error));
  const { url, socket } = resolveRedisTarget(parsed.data, env);
  return { kind: 'upgrade', config: { prefix: parsed.data.prefix, url, socket } };
}
