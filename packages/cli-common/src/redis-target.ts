/**
 * Where Redis is, as the CLIs take it: --url, or --host/--port, or --socket, or the URL in
 * REDISFS_URL. Validation messages name the flag or variable and never echo a value: a URL may
 * hold a password.
 */
import { z } from 'zod';
import { parseRedisUrl } from '@redisfs/store';
import { UsageError } from './errors.js';
import { stringFlagError } from './flags.js';

/** Environment variable that may carry the Redis URL, keeping a password out of `ps`. */
export const URL_ENV = 'REDISFS_URL';

/**
 * A Redis address: redis:// or rediss:// with one host, or several (cluster seed nodes), or
 * redis+sentinel://host:port,…/MASTER. The message names `source`, never the value.
 */
export function redisUrlSchema(source: string) {
  return z.string({ error: stringFlagError(source) }).superRefine((value, ctx) => {
    try {
      parseRedisUrl(value);
    } catch (err) {
      const reason = (err as Error).message;
      ctx.addIssue({
        code: 'custom',
        message: reason.startsWith('not a ')
          ? `${source} must start with redis:// (rediss:// for TLS, redis+sentinel:// for Sentinel)`
          : `${source} is not a valid Redis address: ${reason} (expected redis://[user:pass@]host:port[,host:port…][/db] or redis+sentinel://host:port[,…]/master)`,
      });
    }
  });
}

const PORT_MESSAGE = '--port must be an integer from 1 to 65535';

/**
 * The address flags --host, --port (a string, as the parser gives it; a number once valid),
 * --url and --socket, all optional. A shape, so that a CLI can place them among its own flags;
 * which flags exclude which is the parser's business.
 */
export const redisTargetShape = {
  host: z.string({ error: stringFlagError('--host') }).min(1, '--host must not be empty').optional(),
  port: z
    .string({ error: stringFlagError('--port') })
    .regex(/^\d{1,5}$/, PORT_MESSAGE)
    .transform(Number)
    .refine((n) => n >= 1 && n <= 65535, PORT_MESSAGE)
    .optional(),
  url: redisUrlSchema('--url').optional(),
  socket: z.string({ error: stringFlagError('--socket') }).min(1, '--socket must not be empty').optional(),
  sentinel: z
    .string({ error: stringFlagError('--sentinel') })
    .regex(/^[^,@/\s]+(,[^,@/\s]+)*$/, '--sentinel must be host:port[,host:port…]')
    .optional(),
  masterName: z.string({ error: stringFlagError('--master-name') }).min(1, '--master-name must not be empty').optional(),
};

/** The address flags of a parsed yargs argv, as {@link redisTargetShape} takes them. */
export function redisTargetFlagsOf(argv: Record<string, unknown>): Record<keyof typeof redisTargetShape, unknown> {
  return {
    host: argv.host,
    port: argv.port,
    url: argv.url,
    socket: argv.socket,
    sentinel: argv.sentinel,
    masterName: argv['master-name'],
  };
}

/** The address flags alone: {@link redisTargetShape} as an object schema. */
export const redisTargetSchema = z.object(redisTargetShape);

/** Validated address flags. */
export type RedisTargetFlags = z.output<typeof redisTargetSchema>;

/** Where Redis is. Both undefined: the default server (redis://127.0.0.1:6379). */
export interface RedisTarget {
  url: string | undefined;
  socket: string | undefined;
}

/**
 * The target of validated address flags: --url as given, else a URL built from --host/--port
 * (127.0.0.1 and 6379 filling in), else the URL in `env[URL_ENV]`. A bad URL there is a
 * UsageError that names {@link URL_ENV}.
 */
export function resolveRedisTarget(flags: RedisTargetFlags, env: NodeJS.ProcessEnv = process.env): RedisTarget {
  if ((flags.sentinel === undefined) !== (flags.masterName === undefined)) {
    throw new UsageError('--sentinel and --master-name go together (the sentinels, and the name of the master they watch)');
  }
  if (flags.sentinel !== undefined) {
    const url = `redis+sentinel://${flags.sentinel}/${encodeURIComponent(flags.masterName!)}`;
    const valid = redisUrlSchema('--sentinel').safeParse(url);
    if (!valid.success) throw new UsageError(valid.error.issues[0]?.message ?? 'invalid --sentinel');
    return { url, socket: undefined };
  }
  let url = flags.url;
  if (url === undefined && (flags.host !== undefined || flags.port !== undefined)) {
    const host = flags.host ?? '127.0.0.1';
    url = `redis://${host.includes(':') ? `[${host}]` : host}:${flags.port ?? 6379}`;
  }
  if (url === undefined && env[URL_ENV]) {
    const fromEnv = redisUrlSchema(URL_ENV).safeParse(env[URL_ENV]);
    if (!fromEnv.success) throw new UsageError(fromEnv.error.issues[0]?.message ?? 'invalid arguments');
    url = fromEnv.data;
  }
  return { url, socket: flags.socket };
}

/**
 * The parser options of the Redis address flags (--url, --host, --port, --socket), in the form
 * yargs' `.options()` takes, so that every CLI describes them alike. Values are strings: the
 * zod schemas above validate them.
 */
export const REDIS_TARGET_OPTIONS = {
  url: {
    type: 'string',
    describe: `redis://[user:pass@]host:port/db (rediss:// for TLS; several host:port, comma-separated, for a cluster's seed nodes); or set ${URL_ENV}`,
    conflicts: ['host', 'port'],
  },
  host: { type: 'string', describe: 'Redis host [default: 127.0.0.1]' },
  port: { type: 'string', describe: 'Redis port [default: 6379]' },
  socket: { type: 'string', describe: 'Redis unix socket path', conflicts: ['host', 'port'] },
  sentinel: {
    type: 'string',
    describe: 'host:port[,host:port…] of Redis Sentinels, with --master-name: follow that master through failovers',
    conflicts: ['host', 'port', 'url', 'socket'],
  },
  'master-name': { type: 'string', describe: 'the master the --sentinel sentinels watch' },
} as const;
