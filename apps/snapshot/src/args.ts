/**
 * The command line of `redisfs-snapshot`: yargs parses, zod validates, every problem is one
 * UsageError line (exit code 2). A --url is never echoed back (it may hold a password).
 *
 *   redisfs-snapshot --from A --to A@B [--force]        point-in-time snapshot of A, named A@B
 *   redisfs-snapshot list [--of A]                      filesystems and snapshots on the server
 *   redisfs-snapshot delete --prefix B [--force]        delete snapshot B (--force: any filesystem)
 *   redisfs-snapshot restore --from A@B --to A [--force]  roll A back to snapshot A@B (A@C: a clone)
 */
import { createRequire } from 'node:module';
import yargs from 'yargs';
import { z } from 'zod';
import { familyOf } from '@redisfs/store';
import { REDIS_TARGET_OPTIONS, prefixSchema, redisTargetSchema, resolveRedisTarget, redisTargetFlagsOf, UsageError, type RedisTarget } from '@redisfs/cli-common';

export type SnapshotCommand =
  | { kind: 'snapshot'; target: RedisTarget; from: string; to: string; force: boolean }
  | { kind: 'restore'; target: RedisTarget; from: string; to: string; force: boolean }
  | { kind: 'list'; target: RedisTarget; of: string | undefined }
  | { kind: 'delete'; target: RedisTarget; prefix: string; force: boolean }
  | { kind: 'done' };

/** The subcommands; a snapshot is taken with no subcommand. */
const COMMANDS = ['list', 'delete', 'restore'] as const;

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

function buildParser(args: string[]) {
  return yargs(args)
    .options(REDIS_TARGET_OPTIONS)
    .scriptName('redisfs-snapshot')
    .locale('en')
    .command('$0', 'take a point-in-time snapshot of filesystem --from, named --to, inside Redis', (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'prefix of the filesystem (may be mounted and busy)' })
        .option('to', { type: 'string', demandOption: true, describe: 'name of the new snapshot: FROM@label (must be empty)' })
        .option('force', { type: 'boolean', default: false, describe: 'delete what --to holds first' }),
    )
    .command('list', 'list the filesystems and snapshots on the server', (y) =>
      y.option('of', { type: 'string', describe: 'only the snapshots of this prefix' }),
    )
    .command('delete', 'delete a snapshot', (y) =>
      y
        .option('prefix', { type: 'string', demandOption: true, describe: 'prefix of the snapshot to delete' })
        .option('force', { type: 'boolean', default: false, describe: 'also delete a filesystem that is not a snapshot (unmount it first)' }),
    )
    .command('restore', 'copy snapshot --from into filesystem --to (an ordinary, writable filesystem)', (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'prefix of the snapshot' })
        .option('to', { type: 'string', demandOption: true, describe: 'prefix to restore into, in the same family (F to roll back, F@label for a clone)' })
        .option('force', { type: 'boolean', default: false, describe: 'replace the filesystem --to holds (unmount it first)' }),
    )
    .epilogue(
      'A snapshot holds one point in time even while --from is mounted and written to, and shares its data: ' +
        'snapshots of F are named F@label (as ZFS names pool/fs@snap). ' +
        "Mount one with redisfs --prefix NAME (read-only unless --read-write). No root needed.",
    )
    .strict()
    .help()
    .version(VERSION)
    .exitProcess(false)
    .fail((message, err) => {
      throw new UsageError(`${message ?? err?.message ?? 'invalid arguments'} (see redisfs-snapshot --help)`);
    });
}

/** Parses and validates a command line (without node and script). */
export async function parseSnapshotArgs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<SnapshotCommand> {
  // yargs would take an unknown word for the default command's operand and complain about
  // --from and --to instead.
  const word = firstWord(args);
  if (word !== undefined && !(COMMANDS as readonly string[]).includes(word)) {
    throw new UsageError(
      `unknown command '${word}': the commands are ${COMMANDS.join(', ')}, and --from A --to A@label takes a snapshot (see redisfs-snapshot --help)`,
    );
  }
  const argv = await buildParser(args).parseAsync();
  if (argv.help || argv.version) return { kind: 'done' };
  const flags = check(redisTargetSchema, redisTargetFlagsOf(argv));
  const target = resolveRedisTarget(flags, env);
  switch (argv._[0]) {
    case 'list':
      return { kind: 'list', target, of: argv.of === undefined ? undefined : check(prefixSchema('--of'), argv.of) };
    case 'delete':
      return { kind: 'delete', target, prefix: check(prefixSchema('--prefix'), argv.prefix), force: check(z.boolean(), argv.force) };
    default: {
      const from = check(prefixSchema('--from'), argv.from);
      const to = check(prefixSchema('--to'), argv.to);
      if (from === to) throw new UsageError('--from and --to must differ');
      if (familyOf(from) !== familyOf(to)) {
        throw new UsageError(`--to must be in the family of --from (it shares its data): name it ${familyOf(from)}@<label>`);
      }
      const kind = argv._[0] === 'restore' ? 'restore' : 'snapshot';
      return { kind, target, from, to, force: check(z.boolean(), argv.force) };
    }
  }
}

/** The first word of a command line that is neither a flag nor a flag's value. */
function firstWord(args: string[]): string | undefined {
  const valued = ['from', 'to', 'of', 'prefix', ...Object.keys(REDIS_TARGET_OPTIONS)];
  const argv = yargs(args).string(valued).boolean(['force', 'help', 'version']).help(false).version(false).exitProcess(false).parseSync();
  const word = argv._[0];
  return word === undefined ? undefined : String(word);
}

function check<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new UsageError(issue ? issue.message : 'invalid arguments');
}
