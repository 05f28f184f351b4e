/**
 * fsck, reading the session and lock keys of one filesystem (`ss`, `s:`, `so:`, `sl:`, `o:`,
 * `lf:`, `lp:`) and `orph`, which the metadata scan (fsck-scan.ts) hands over as it meets them.
 * Sets and hashes are read with SSCAN/HSCAN or, for the many small per-inode keys, pipelined in
 * batches. A key of the wrong type is reported as unexpected. No judging here (fsck-sessions.ts).
 */
import type { KeyLayout, SessionKey } from '@redisfs/schema';
import type { RedisClient } from './connect.js';
import { commandAt, hScanEntries, sScanMembers, zScanMembers } from './topology.js';

const SCAN_COUNT = 1000;
const BATCH = 500;

/** What the session and lock keys hold. */
export interface SessionImage {
  /** Redis time when they were read (ms). */
  nowMs: number;
  /** `ss`: session id → lease expiry (ms; 0: declared dead). */
  listed: Map<string, number>;
  /** `s:<sid>`: the description of each session. */
  described: Map<string, Record<string, string>>;
  /** `so:<sid>`: inode → open count, per session. */
  open: Map<string, Map<number, number>>;
  /** `sl:<sid>`: inodes with locks, per session. */
  locked: Map<string, Set<number>>;
  /** `o:<ino>`: the sessions holding each inode. */
  openBy: Map<number, Set<string>>;
  /** `lf:<ino>` and `lp:<ino>`: the lock fields (`<sid>:<owner>`) of each inode. */
  lockFields: Map<number, Set<string>>;
  /** `orph`: inodes kept with link count 0. */
  orphans: Set<number>;
}

/** Session keys met by the scan, to read once it is done. */
export class SessionKeys {
  private readonly sids = { session: new Set<string>(), sessionOpen: new Set<string>(), sessionLocks: new Set<string>() };
  private readonly inos = { openBy: new Set<number>(), flocks: new Set<number>(), posixLocks: new Set<number>() };

  note(parsed: SessionKey): void {
    if (parsed.kind === 'sessions') return; // read anyway
    if ('sid' in parsed) this.sids[parsed.kind].add(parsed.sid);
    else this.inos[parsed.kind].add(parsed.ino);
  }

  /** Reads every key noted, plus `ss` and `orph`; wrong types go to `unexpected`. */
  async read(client: RedisClient, layout: KeyLayout, unexpected: Map<string, string>): Promise<SessionImage> {
    const image: SessionImage = {
      nowMs: await redisTimeMs(client, layout),
      listed: new Map(),
      described: new Map(),
      open: new Map(),
      locked: new Map(),
      openBy: new Map(),
      lockFields: new Map(),
      orphans: new Set(),
    };
    const wrong = (key: string, what: string) => (err: unknown) => {
      rethrowUnlessWrongType(err);
      unexpected.set(key, `is not a ${what}`);
    };
    await (async () => {
      for await (const page of zScanMembers(client, layout.sessions, SCAN_COUNT)) for (const e of page) image.listed.set(e.value, e.score);
    })().catch(wrong(layout.sessions, 'sorted set (the sessions must be one)'));
    await (async () => {
      for await (const page of sScanMembers(client, layout.orphans, SCAN_COUNT)) {
        for (const m of page) if (/^[1-9]\d{0,15}$/.test(m)) image.orphans.add(Number(m));
      }
    })().catch(wrong(layout.orphans, 'set (the kept-open files must be one)'));
    await inBatches([...this.sids.session], async (sid) => {
      const key = layout.session(sid);
      await client.hGetAll(key).then((h) => void (Object.keys(h).length > 0 && image.described.set(sid, h)), wrong(key, 'hash (a session must be one)'));
    });
    for (const sid of this.sids.sessionOpen) {
      const key = layout.sessionOpen(sid);
      const held = new Map<number, number>();
      await (async () => {
        for await (const page of hScanEntries(client, key, SCAN_COUNT)) {
          for (const { field, value } of page) if (/^[1-9]\d{0,15}$/.test(field)) held.set(Number(field), Number(value));
        }
      })().catch(wrong(key, 'hash (the open files of a session must be one)'));
      image.open.set(sid, held);
    }
    for (const sid of this.sids.sessionLocks) {
      const key = layout.sessionLocks(sid);
      const inos = new Set<number>();
      await (async () => {
        for await (const page of sScanMembers(client, key, SCAN_COUNT)) for (const m of page) inos.add(Number(m));
      })().catch(wrong(key, 'set (the locked inodes of a session must be one)'));
      image.locked.set(sid, inos);
    }
    await inBatches([...this.inos.openBy], async (ino) => {
      const key = layout.openBy(ino);
      await client.sMembers(key).then((m) => void (m.length > 0 && image.openBy.set(ino, new Set(m))), wrong(key, 'set (the holders of an inode must be one)'));
    });
    const lockKeys = [
      ...[...this.inos.flocks].map((ino) => ({ ino, key: layout.flocks(ino) })),
      ...[...this.inos.posixLocks].map((ino) => ({ ino, key: layout.posixLocks(ino) })),
    ];
    await inBatches(lockKeys, async ({ ino, key }) => {
      await client.hKeys(key).then((fields) => {
        const all = image.lockFields.get(ino) ?? new Set<string>();
        for (const f of fields) all.add(f);
        if (all.size > 0) image.lockFields.set(ino, all);
      }, wrong(key, 'hash (the locks of an inode must be one)'));
    });
    return image;
  }
}

/** Redis's clock, in ms (the clock leases are measured in). */
async function redisTimeMs(client: RedisClient, layout: KeyLayout): Promise<number> {
  const reply = (await commandAt(client, layout.superblock, ['TIME'], true)) as [string, string];
  return Number(reply[0]) * 1000 + Math.floor(Number(reply[1]) / 1000);
}

/** Runs `fn` over `items`, BATCH at a time concurrently (commands pipelined). */
async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

function rethrowUnlessWrongType(err: unknown): void {
  if (!(err instanceof Error && err.message.startsWith('WRONGTYPE'))) throw err;
}
