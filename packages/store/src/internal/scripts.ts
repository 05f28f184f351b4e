/**
 * Runs the store's Lua scripts by SHA (EVALSHA, EVALSHA_RO for those that only read), loading
 * them again after a SCRIPT FLUSH or restart.
 */
import { createHash } from 'node:crypto';
import { SCRIPTS as FS_SCRIPTS } from './lua.js';
import { SNAPSHOT_SCRIPTS } from './lua-snapshot.js';
import type { RedisClient } from './connect.js';
import { commandCounterOf } from './stats.js';

type Arg = string | Buffer;

const SCRIPTS = { ...FS_SCRIPTS, ...SNAPSHOT_SCRIPTS };
export type ScriptName = keyof typeof SCRIPTS;

/**
 * Scripts that only read: run with EVALSHA_RO, so that Redis checks their keys for read access
 * only (a user with read-only key patterns can mount --read-only) and lets them run anywhere.
 */
const READ_ONLY_SCRIPTS: ReadonlySet<ScriptName> = new Set(['resolve', 'lookup', 'getattrs']);

export class ScriptRunner {
  private readonly shas = new Map<ScriptName, string>();

  constructor(
    private readonly client: RedisClient,
    private readonly routingKey: string,
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
  async run(name: ScriptName, metaPrefix: string, args: Arg[]): Promise<unknown> {
    const options = { keys: [this.routingKey], arguments: [metaPrefix, ...args] as string[] };
    if (READ_ONLY_SCRIPTS.has(name) && this.readOnlyCalls) {
      try {
        return await this.call(name, options, true);
      } catch (err) {
        // Redis < 7, or an ACL that allows only the plain calls: those do the same.
        if (!(err instanceof Error) || !/unknown command|NOPERM.*\beval(sha)?_ro\b/i.test(err.message)) throw err;
        this.readOnlyCalls = false;
      }
    }
    return this.call(name, options, false);
  }

  private async call(name: ScriptName, options: { keys: string[]; arguments: string[] }, readOnly: boolean): Promise<unknown> {
    try {
      const sha = this.shas.get(name)!;
      return await (readOnly ? this.client.evalShaRo(sha, options) : this.client.evalSha(sha, options));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL also caches the script server-side, so later calls take the EVALSHA path again.
      return await (readOnly ? this.client.evalRo(SCRIPTS[name], options) : this.client.eval(SCRIPTS[name], options));
    }
  }
}
