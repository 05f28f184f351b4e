/**
 * Who has a filesystem open. Every store connection names itself (CLIENT SETNAME)
 * `redisfs:<prefix>:<rw|ro>`, so that tools which replace or delete a whole filesystem can
 * refuse while it is mounted somewhere, instead of pulling it from under a live mount.
 */
import { FsError } from '../errors.js';
import type { RedisClient } from './connect.js';
import { keysFor } from '@redisfs/schema';
import { commandAt } from './topology.js';

const NAME_HEAD = 'redisfs:';

/** The connection name of a store opened on `prefix`. */
export function mountClientName(prefix: string, readOnly: boolean): string {
  return `${NAME_HEAD}${prefix}:${readOnly ? 'ro' : 'rw'}`;
}

/** One connection of a store, as CLIENT LIST shows it. */
export interface OpenClient {
  /** ip:port (or the socket path) the client connects from. */
  addr: string;
  readOnly: boolean;
}

/**
 * The connections of stores open on `prefix` (mounts, or programs using openStore).
 * Undefined when the server does not let this user run CLIENT LIST (an ACL): unknown, not none.
 */
export async function openClientsOf(client: RedisClient, prefix: string): Promise<OpenClient[] | undefined> {
  let list: string;
  try {
    list = String(await commandAt(client, keysFor(prefix).superblock, ['CLIENT', 'LIST', 'TYPE', 'normal']));
  } catch {
    return undefined;
  }
  const out: OpenClient[] = [];
  for (const line of list.split('\n')) {
    const fields = new Map(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const name = fields.get('name') ?? '';
    if (name === mountClientName(prefix, false) || name === mountClientName(prefix, true)) {
      out.push({ addr: fields.get('addr') ?? '?', readOnly: name.endsWith(':ro') });
    }
  }
  return out;
}

/** How long a just-unmounted filesystem's connections get to close before it counts as open. */
const CLOSE_GRACE_MS = 3000;

/**
 * EBUSY when stores are open on `prefix` (as far as this user may know: see openClientsOf).
 * `fusermount -u` returns before the mount's process has closed its connection, so connections
 * get a short grace to go away first.
 */
export async function assertNotOpen(client: RedisClient, prefix: string, doing: string): Promise<void> {
  const deadline = Date.now() + CLOSE_GRACE_MS;
  let open = await openClientsOf(client, prefix);
  while (open && open.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    open = await openClientsOf(client, prefix);
  }
  if (!open || open.length === 0) return;
  const addrs = [...new Set(open.map((c) => c.addr.replace(/:\d+$/, '')))].join(', ');
  throw new FsError(
    'EBUSY',
    `cannot ${doing}: '${prefix}' is in use by ${open.length} connection(s) of redisfs (from ${addrs}); unmount it first`,
  );
}
