/**
 * Where Redis is, as the CLIs take it: --url, or --host/--port, or --socket, or the URL in
 * REDISFS_URL. Validation messages name the flag or variable and never echo a value: a URL may
 * hold a password.
 */
import { z } from 'zod';
import { UsageError } from './errors.js';
import { stringFlagError } from './flags.js';

/** Environment variable that may carry the Redis URL, keeping a password out of `ps`. */
export const URL_ENV = 'REDISFS_URL';

/** A redis:// or rediss:// URL; the message names `source`, never the value. */
export function redisUrlSchema(source: string) {
  return z.string({ error: stringFlagError(source) }).superRefine((value, ctx) => {
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
};

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
    describe: `redis://[user:pass@]host:port/db (rediss:// for TLS); or set ${URL_ENV}`,
    conflicts: ['host', 'port'],
  },
  host: { type: 'string', describe: 'Redis host [default: 127.0.0.1]' },
  port: { type: 'string', describe: 'Redis port [default: 6379]' },
  socket: { type: 'string', describe: 'Redis unix socket path', conflicts: ['host', 'port'] },
} as const;
