/** What Redis itself says: commands served (INFO commandstats) and memory used (INFO memory). */
import type { RedisClient } from './targets.js';

/** Calls per command, e.g. { evalsha: 2000, hgetall: 10 }. */
export type CommandCounts = Record<string, number>;

export async function commandCounts(client: RedisClient): Promise<CommandCounts> {
  const info = await client.info('commandstats');
  const out: CommandCounts = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Calls per command summed over several servers (every master of a cluster). */
export async function commandCountsOf(clients: readonly RedisClient[]): Promise<CommandCounts> {
  const out: CommandCounts = {};
  for (const counts of await Promise.all(clients.map(commandCounts))) {
    for (const [cmd, n] of Object.entries(counts)) out[cmd] = (out[cmd] ?? 0) + n;
  }
  return out;
}

/** after − before, without the bench's own INFO / MEMORY calls, largest first. */
export function diffCounts(before: CommandCounts, after: CommandCounts): CommandCounts {
  const out: [string, number][] = [];
  for (const [cmd, n] of Object.entries(after)) {
    if (cmd === 'info' || cmd.startsWith('memory') || cmd === 'config|get') continue;
    const d = n - (before[cmd] ?? 0);
    if (d > 0) out.push([cmd, d]);
  }
  return Object.fromEntries(out.sort((a, b) => b[1] - a[1]));
}

export function total(counts: CommandCounts): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

export async function usedMemory(client: RedisClient): Promise<number> {
  const info = await client.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)![1]);
}

/** used_memory summed over several servers. */
export async function usedMemoryOf(clients: readonly RedisClient[]): Promise<number> {
  return (await Promise.all(clients.map(usedMemory))).reduce((a, b) => a + b, 0);
}
