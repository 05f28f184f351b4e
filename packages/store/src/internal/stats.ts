/**
 * Round trips to Redis, counted per command, so that the store's cost model ("one round trip per
 * metadata change") can be checked from outside (Store.stats, the mount's SIGUSR2 line, the bench).
 *
 * What counts as one: every command the client sends on the store's behalf, including a script
 * call (EVALSHA, EVALSHA_RO, or the EVAL a NOSCRIPT answer makes it retry with). A script counts
 * once however many commands it runs inside Redis; script calls are counted under
 * "<COMMAND> <script name>" (e.g. "EVALSHA_RO lookup"), other commands under their name
 * ("HGETALL"). A MULTI…EXEC or pipeline batch counts once, as "MULTI" or "PIPELINE". Commands
 * node-redis writes to the socket together (auto-pipelining) still count one each: each is a
 * reply Redis must send and the caller waits for. The connection handshake (HELLO, AUTH,
 * CLIENT SETNAME, also on reconnect) is not counted.
 *
 * Counted where every command leaves the client (sendCommand of the object behind node-redis's
 * per-option proxies, so the Buffer view counts too): one Map increment per command.
 */
import type { RedisClient } from './connect.js';

/** Counts of one client, by command name (see the module comment for the names). */
export class CommandCounter {
  private readonly counts = new Map<string, number>();
  /** Script SHA or source → script name, to label script calls. */
  private readonly scripts = new Map<string, string>();

  /** Labels calls of a script (by SHA for EVALSHA, by source for EVAL) with its name. */
  nameScript(name: string, sha: string, source: string): void {
    this.scripts.set(sha, name);
    this.scripts.set(source, name);
  }

  /** Counts one command from its arguments as sent (`args[0]` is the command name). */
  countArgs(args: ReadonlyArray<unknown>): void {
    const command = String(args[0]).toUpperCase();
    const script = command.startsWith('EVAL') ? this.scripts.get(String(args[1])) : undefined;
    this.add(script === undefined ? command : `${command} ${script}`);
  }

  add(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
  }

  /** A copy of the counts so far, largest first. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
  }
}

/** The node-redis members the hook replaces (public sendCommand; batch executors are internal). */
interface Hookable {
  /** node-redis: the client object every proxy (withTypeMapping, …) inherits from. */
  _self?: Hookable;
  sendCommand(args: ReadonlyArray<unknown>, options?: unknown): Promise<unknown>;
  _executeMulti?(commands: unknown[], selectedDB?: number): Promise<unknown>;
  _executePipeline?(commands: unknown[], selectedDB?: number): Promise<unknown>;
}

const counters = new WeakMap<object, CommandCounter>();

/**
 * Starts counting the commands `client` sends (once per client; later calls return the same
 * counter). Views made from it before or after (bufferView) count into the same counter.
 * `hook: false` only makes the counter: a cluster or sentinel client counts at its node clients
 * instead (hookClientInto), since its own sendCommand takes other arguments.
 */
export function countCommands(client: RedisClient, hook = true): CommandCounter {
  const existing = counters.get(client);
  if (existing) return existing;
  const counter = new CommandCounter();
  if (hook) hookClientInto(client, counter);
  counters.set(client, counter);
  return counter;
}

const hooked = new WeakSet<object>();

/** Counts the commands one single-server client sends into `counter` (once per client). */
export function hookClientInto(client: RedisClient, counter: CommandCounter): void {
  const c = client as unknown as Hookable;
  const self = c._self ?? c;
  if (hooked.has(self)) return;
  hooked.add(self);
  const send = self.sendCommand;
  self.sendCommand = function (this: Hookable, args, options) {
    counter.countArgs(args);
    return send.call(this, args, options);
  };
  for (const [member, label] of [['_executeMulti', 'MULTI'], ['_executePipeline', 'PIPELINE']] as const) {
    const run = self[member];
    if (typeof run !== 'function') continue;
    self[member] = function (this: Hookable, commands, selectedDB) {
      counter.add(label);
      return run.call(this, commands, selectedDB);
    };
  }
}

/** The counter of a client connected by connectClient (undefined for any other client). */
export function commandCounterOf(client: RedisClient): CommandCounter | undefined {
  return counters.get(client);
}
