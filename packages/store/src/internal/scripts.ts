/** Runs the store's Lua scripts by SHA (EVALSHA), loading them again after a SCRIPT FLUSH or restart. */
import { createHash } from 'node:crypto';
import { SCRIPTS as FS_SCRIPTS } from './lua.js';
import { SNAPSHOT_SCRIPTS } from './lua-snapshot.js';
import type { RedisClient } from './connect.js';

type Arg = string | Buffer;

const SCRIPTS = { ...FS_SCRIPTS, ...SNAPSHOT_SCRIPTS };
export type ScriptName = keyof typeof SCRIPTS;

export class ScriptRunner {
  private readonly shas = new Map<ScriptName, string>();

  constructor(
    private readonly client: RedisClient,
    private readonly routingKey: string,
  ) {
    for (const [name, src] of Object.entries(SCRIPTS)) {
      this.shas.set(name as ScriptName, createHash('sha1').update(src).digest('hex'));
    }
  }

  /** Runs a script with ARGV = [metaPrefix, ...args]. */
  async run(name: ScriptName, metaPrefix: string, args: Arg[]): Promise<unknown> {
    const options = { keys: [this.routingKey], arguments: [metaPrefix, ...args] as string[] };
    try {
      return await this.client.evalSha(this.shas.get(name)!, options);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // EVAL also caches the script server-side, so later calls take the EVALSHA path again.
      return await this.client.eval(SCRIPTS[name], options);
    }
  }
}
