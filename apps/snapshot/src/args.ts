/**
 * The command line of `redisfs-snapshot`: yargs parses, zod validates, every problem is one
 * UsageError line (exit code 2). A --url is never echoed back (it may hold a password).
 *
 *   redisfs-snapshot --from A --to B [--force]   copy filesystem A to prefix B
 *   redisfs-snapshot list                        list the filesystems on the server
 *   redisfs-snapshot delete --prefix B           delete filesystem B
 */
import { createRequire } from 'node:module';
import yargs, { type Argv } from 'yargs';
import { z } from 'zod';
import { PREFIX_PATTERN } from '@redisfs/schema';
import { UsageError } from './errors.js';

/** Environment variable that may carry the Redis URL, keeping a password out of `ps`. */
export const URL_ENV = 'REDISFS_URL';

/** Where Redis is; both undefined: redis://127.0.0.1:6379. */
export interface Target {
  url: string | undefined;
  socket: string | undefined;
}

export type SnapshotCommand =
  | { kind: 'copy'; target: Target; from: string; to: string; force: boolean }
  | { kind: 'list'; target: Target }
  | { kind: 'delete'; target: Target; prefix: string }
  | { kind: 'done' };

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

const once = (flag: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? `${flag} is required` : Array.isArray(iss.input) ? `${flag} may be given only once` : `${flag} must be a string`;

function redisUrlSchema(source: string) {
  return z.string({ error: once(source) }).superRefine((value, ctx) => {
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${source} is not a valid URL (expected redis://[user:pass@]host:port/db)` });
      return;
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      ctx.addIssue({ code: 'custom', message: `${source} must start with redis:// or rediss:// (TLS)` });
    } else if (!u.hostname) {
      ctx.addIssue({ code: 'custom', message: `${source} has no host (expected redis://[user:pass@]host:port/db)` });
    } else if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d+$/.test(u.pathname)) {
      ctx.addIssue({ code: 'custom', message: `${source}: the path must be a database number, e.g. /0` });
    }
  });
}

const PORT_MESSAGE = '--port must be an integer from 1 to 65535';
const prefixSchema = (flag: string) =>
  z.string({ error: once(flag) }).regex(PREFIX_PATTERN, `${flag} must be 1-64 letters, digits, '_', '-' or '.'`);

const targetSchema = z.object({
  host: z.string({ error: once('--host') }).min(1, '--host must not be empty').optional(),
  port: z
    .string({ error: once('--port') })
    .regex(/^\d{1,5}$/, PORT_MESSAGE)
    .transform(Number)
    .refine((n) => n >= 1 && n <= 65535, PORT_MESSAGE)
    .optional(),
  url: redisUrlSchema('--url').optional(),
  socket: z.string({ error: once('--socket') }).min(1, '--socket must not be empty').optional(),
});

function withTarget<T>(y: Argv<T>) {
  return y
    .option('url', {
      type: 'string',
      describe: `redis://[user:pass@]host:port/db (rediss:// for TLS); or set ${URL_ENV}`,
      conflicts: ['host', 'port'],
    })
    .option('host', { type: 'string', describe: 'Redis host [default: 127.0.0.1]' })
    .option('port', { type: 'string', describe: 'Redis port [default: 6379]' })
    .option('socket', { type: 'string', describe: 'Redis unix socket path', conflicts: ['host', 'port'] });
}

function buildParser(args: string[]) {
  return withTarget(yargs(args))
    .scriptName('redisfs-snapshot')
    .locale('en')
    .command('$0', 'copy filesystem --from to prefix --to, inside Redis', (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'prefix of the filesystem to copy' })
        .option('to', { type: 'string', demandOption: true, describe: 'prefix to copy it to (must be empty)' })
        .option('force', { type: 'boolean', default: false, describe: 'delete what --to holds first' }),
    )
    .command('list', 'list the filesystems on the server')
    .command('delete', 'delete a filesystem (unmount it first)', (y) =>
      y.option('prefix', { type: 'string', demandOption: true, describe: 'prefix of the filesystem to delete' }),
    )
    .epilogue('A copy is exact only when nothing writes to --from meanwhile (unmount it, or mount it --read-only).')
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
  const argv = await buildParser(args).parseAsync();
  if (argv.help || argv.version) return { kind: 'done' };
  const t = check(targetSchema, { host: argv.host, port: argv.port, url: argv.url, socket: argv.socket });
  let url = t.url;
  if (url === undefined && (t.host !== undefined || t.port !== undefined)) {
    const host = t.host ?? '127.0.0.1';
    url = `redis://${host.includes(':') ? `[${host}]` : host}:${t.port ?? 6379}`;
  }
  if (url === undefined && env[URL_ENV]) url = check(redisUrlSchema(URL_ENV), env[URL_ENV]);
  const target: Target = { url, socket: t.socket };
  switch (argv._[0]) {
    case 'list':
      return { kind: 'list', target };
    case 'delete':
      return { kind: 'delete', target, prefix: check(prefixSchema('--prefix'), argv.prefix) };
    default: {
      const from = check(prefixSchema('--from'), argv.from);
      const to = check(prefixSchema('--to'), argv.to);
      if (from === to) throw new UsageError('--from and --to must differ');
      return { kind: 'copy', target, from, to, force: check(z.boolean(), argv.force) };
    }
  }
}

function check<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new UsageError(issue ? issue.message : 'invalid arguments');
}
