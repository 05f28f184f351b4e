/**
 * The command line of `redisfs fsck` (the arguments after `fsck`): yargs parses, a zod schema
 * validates, and every problem becomes one UsageError line. Values are never echoed back: a
 * --url may hold a password.
 */
import { z } from 'zod';
import { firstIssueMessage, prefixSchema, redisTargetShape, resolveRedisTarget, redisTargetFlagsOf, UsageError } from '@redisfs/cli-common';
import { prefixSubcommandParser } from './subcommand-parser.js';

/** A validated fsck command line. */
export interface FsckConfig {
  prefix: string;
  /** Fix what can be fixed; without it nothing is written. */
  repair: boolean;
  /** Print the whole report as JSON instead of lines. */
  json: boolean;
  /** Redis URL from --url, --host/--port or REDISFS_URL; undefined with the socket or the default server. */
  url: string | undefined;
  socket: string | undefined;
}

/** What the command line asks for: a check, or nothing more (help or version was printed). */
export type FsckCommand = { kind: 'fsck'; config: FsckConfig } | { kind: 'done' };

const argsSchema = z.object({
  prefix: prefixSchema('--prefix'),
  ...redisTargetShape,
  repair: z.boolean({ error: '--repair may be given only once' }),
  json: z.boolean({ error: '--json may be given only once' }),
});

function buildParser(args: string[]) {
  return prefixSubcommandParser('fsck', args, {
    usage:
      '$0 --prefix P [--repair] [--json] [options]\n\n' +
        'Check the consistency of the redisfs filesystem under --prefix: every entry names a live inode, ' +
        'every link count matches its entries, no orphan inode, stray key or block. Read-only unless --repair.',
    epilogue:
      'Exit codes, as e2fsck: 0 clean, 1 problems found and all repaired, 4 problems left (found without ' +
        '--repair, or not all fixed), 8 operational error (Redis unreachable, no filesystem at --prefix), ' +
        '16 usage error. A check of a filesystem being written may report transient problems; run --repair ' +
        'only on a quiet one (unmounted, or mounted --read-only everywhere).',
  }, {
    repair: { type: 'boolean', default: false, describe: 'fix what can be fixed (only on a filesystem nobody writes)' },
    json: { type: 'boolean', default: false, describe: 'print the report as JSON' },
  } as const);
}

/**
 * Parses and validates the arguments of `redisfs fsck` (those after `fsck`). Help and version
 * are printed by yargs and give `{ kind: 'done' }`. Every problem is a one-line UsageError.
 */
export async function parseFsckArgs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<FsckCommand> {
  const argv = await buildParser(args).parseAsync();
  if (argv.help || argv.version) return { kind: 'done' };
  const parsed = argsSchema.safeParse({
    prefix: argv.prefix,
    ...redisTargetFlagsOf(argv),
    repair: argv.repair,
    json: argv.json,
  });
  if (!parsed.success) throw new UsageError(firstIssueMessage(parsed.error));
  const a = parsed.data;
  const { url, socket } = resolveRedisTarget(a, env);
  return { kind: 'fsck', config: { prefix: a.prefix, repair: a.repair, json: a.json, url, socket } };
}

