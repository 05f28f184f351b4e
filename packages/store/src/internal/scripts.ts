/**
 * Runs the store's Lua scripts by SHA (EVALSHA, EVALSHA_RO for those that only read), loading
 * them again after a SCRIPT FLUSH or restart.
 */
import { createHash } from 'node:crypto';
import { SCRIPTS as FS_SCRIPTS } from './lua.js';
import { SNAPSHOT_SCRIPTS } from './lua-snapshot.js';
import { UPGRADE_SCRIPTS } from './lua-upgrade.js';
import { LOCK_SCRIPTS } from './lua-locks.js';
import { SESSION_SCRIPTS } from './lua-sessions.js';
import type { BinaryClient, RedisClient, ScriptOptions } from './connect.js';
import { commandCounterOf } from './stats.js';
import { shakeLua } from './lua-shake.js';

type Arg = string | Buffer;
/** What a script call needs of a client (the string or the Buffer view of one connection). */
type ScriptClient = Pick<BinaryClient, 'evalSha' | 'evalShaRo' | 'eval' | 'evalRo'>;

/** The scripts as written (with every shared function). */
export const SCRIPT_SOURCES = { ...FS_SCRIPTS, ...SNAPSHOT_SCRIPTS, ...UPGRADE_SCRIPTS, ...LOCK_SCRIPTS, ...SESSION_SCRIPTS };
export type ScriptName = keyof typeof SCRIPT_SOURCES;
/** Every script as it is sent: without the shared functions it never calls (lua-shake.ts). */
export const SCRIPTS = Object.fromEntries(
  Object.entries(SCRIPT_SOURCES).map(([name, src]) => [name, shakeLua(src)]),
) as Record<ScriptName, string>;

/**
 * Scripts that only read: run with EVALSHA_RO, so that Redis checks their keys for read access
 * only (a user with read-only key patterns can mount --read-only) and lets them run anywhere.
 */
const READ_ONLY_SCRIPTS: ReadonlySet<ScriptName> = new Set(['resolve', 'lookup', 'lookups', 'getattrs', 'readBlocks']);

export class ScriptRunner {
  private readonly shas = new Map<ScriptName, string>();

  constructor(
    private readonly client: RedisClient,
    private readonly routingKey: string,
    /** The same connection with Buffer replies, for {@link runBinary}. */
    private readonly bin?: BinaryClient,
  ) {
    const counter = commandCounterOf(client);
    for (const [name, src] of Object.entries(SCRIPTS)) {
      const sha = createHash('sha1').update(src).digest('hex');
      this.shas.set(name as ScriptName, sha);
      // Script calls count once each, under the script's name ("EVALSHA create").
      counter?.nameScript(name, sha, src);
    }
  }

  /** Whether the server knows EVALSHA_RO/EVAL_RO (Redis 7); cleared at the first refusal. */
  private readOnlyCalls = true;

  /** Runs a script with ARGV = [metaPrefix, ...args]. */
  run(name: ScriptName, metaPrefix: string, args: Arg[]): Promise<unknown> {
    return this.runWith(this.client, name, metaPrefix, args);
  }

  /** The same, with bulk strings in the reply as Buffers (data blocks). */
  runBinary(name: ScriptName, metaPrefix: string, args: Arg[]): Promise<unknown> {
    if (!this.bin) throw new Error('ScriptRunner: no binary view of the client');
    return this.runWith(this.bin, name, metaPrefix, args);
  }

  private async runWith(client: ScriptClient, name: ScriptName, metaPrefix: string, args: Arg[]): Promise<unknown> {
    const options: ScriptOptions = { keys: [this.routingKey], arguments: [metaPrefix, ...args] };
    if (READ_ONLY_SCRIPTS.has(name) && this.readOnlyCalls) {
      try {
        return await this.call(client, name, options, true);
      } catch (err) {
        // Redis < 7, or an ACL that allows only the plain calls: those do the same.
        if (!(err instanceof Error) || !/unknown command|NOPERM.*\beval(sha)?_ro\b/i.test(err.message)) throw err;
        this.readOnlyCalls = false;
      }
    }
    return this.call(client, name, options, false);
  }

  private async call(client: ScriptClient, name: ScriptName, options: ScriptOptions, readOnly: boolean): Promise<unknown> {
    try {
      const sha = this.shas.get(name)!;
      return await (readOnly ? client.evalShaRo(sha, options) : client.evalSha(sha, options));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL also caches the script server-side, so later calls take the EVALSHA path again.
      return await (readOnly ? client.evalRo(SCRIPTS[name], options) : client.eval(SCRIPTS[name], options));
    }
  }
}
