/**
 * fsck, judging the sessions (mounts) of one filesystem and what they hold, and repairing them.
 *
 * A session is alive while its lease (`ss` score, ms) runs past Redis's time and its
 * description `s:<sid>` exists. Findings:
 *  - session-expired: a session that is not alive (expired, declared dead and not fully ended,
 *    or keys left over): repair ends it as a mount would (lua-sessions.ts, endSession);
 *  - removed-file-unheld: a file whose last name is gone (nlink 0) that no live session holds:
 *    repair frees it. One that a live session holds is no problem: "kept open after removal";
 *  - open-entry-stale: a hold (`o:<ino>`, `so:<sid>`) of an inode that does not exist, or by a
 *    session that does not exist; an `orph` member that is no kept-open file: repair drops it;
 *  - lock-stale: lock fields of sessions that are not alive, which their end will not drop:
 *    repair drops them (and tells lock waiters);
 *  - fuse-hidden-entry: an entry named like libfuse's hidden files, left by a mount of an
 *    earlier redisfs that crashed while a removed file was open: repair unlinks it.
 * What an expired session's end will do anyway (its holds, its listed locks) is not reported twice.
 */
import type { KeyLayout } from '@redisfs/schema';
import type { SessionInfo } from '../types.js';
import type { FsckRepair } from '../fsck.js';
import { entryRefs, finding, shownEntry, type Finding, type SessionRepairAction } from './fsck-check.js';
import type { InodeImage, MetaImage } from './fsck-scan.js';
import { nowNs } from './attr.js';
import { nameBytes, showName } from './names.js';
import { releaseGcWork } from './release.js';
import type { ScriptName, ScriptRunner } from './scripts.js';
import type { RedisClient } from './connect.js';

/**
 * How libfuse names a file it hides instead of removing it while open (without hard_remove);
 * tested against an entry's byteKey (one char per byte), so it matches those bytes exactly.
 */
export const FUSE_HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;
const SID_FIELD = /^([0-9a-f]{16}):/;

/** One session, as fsck reports it. */
export interface FsckSession extends Omit<SessionInfo, 'this'> {
  /** How long ago it registered (Redis time); `expiresMs` is 0 once declared dead and being ended. */
  ageMs: number;
}

/** A file removed while open, kept for the live sessions that hold it: not a problem. */
export interface FsckKeptOpen {
  ino: number;
  size: number;
  /** The live sessions holding it. */
  sessions: string[];
}

export interface SessionCheck {
  findings: Finding[];
  sessions: FsckSession[];
  keptOpen: FsckKeptOpen[];
}

/** Judges the sessions of an image; `removed`: the files with link count 0 that no entry names. */
export function checkSessions(image: MetaImage, layout: KeyLayout, removed: ReadonlyMap<number, InodeImage>): SessionCheck {
  const s = image.sessions;
  const sids = new Set([...s.listed.keys(), ...s.described.keys(), ...s.open.keys(), ...s.locked.keys()]);
  const alive = (sid: string) => (s.listed.get(sid) ?? 0) > s.nowMs && s.described.has(sid);
  const known = (sid: string) => sids.has(sid);
  // What ending a dead session takes care of: its holds (so:) and the locks it lists (sl:).
  const endCovers = (sid: string, ino: number, what: 'open' | 'locked') =>
    known(sid) && !alive(sid) && (what === 'open' ? s.open.get(sid)?.has(ino) : s.locked.get(sid)?.has(ino)) === true;
  const out: Finding[] = [];
  const sessions: FsckSession[] = [];
  for (const sid of [...sids].sort()) {
    const d = s.described.get(sid) ?? {};
    const num = (v: string | undefined) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : 0);
    const expiresMs = s.listed.get(sid) ?? 0;
    const info: FsckSession = {
      id: sid,
      host: d.host ?? '',
      pid: num(d.pid),
      mountpoint: d.mnt ?? '',
      version: d.ver ?? '',
      startedMs: num(d.start),
      ageMs: num(d.start) > 0 ? Math.max(0, s.nowMs - num(d.start)) : 0,
      expiresMs,
      alive: alive(sid),
      openFiles: s.open.get(sid)?.size ?? 0,
      locks: s.locked.get(sid)?.size ?? 0,
    };
    sessions.push(info);
    if (info.alive) continue;
    const where = info.host ? ` (${info.host} pid ${info.pid}${info.mountpoint ? `, ${info.mountpoint}` : ''})` : '';
    const state = !s.listed.has(sid)
      ? 'is not listed in ' + layout.sessions + ' (keys left over)'
      : expiresMs === 0
        ? 'was declared dead and is not fully ended'
        : `expired ${Math.round((s.nowMs - expiresMs) / 1000)} s ago`;
    out.push(
      finding(
        'session-expired',
        `session ${sid}${where} ${state}: it holds ${info.openFiles} open file(s) and locks on ${info.locks} inode(s)`,
        { key: layout.session(sid) },
        { op: 'end-session', sid },
      ),
    );
  }
  // Holds of inodes that are gone, or by sessions that do not exist.
  for (const [sid, held] of s.open) {
    if (!alive(sid)) continue; // its end drops them
    for (const ino of held.keys()) {
      if (image.inodes.has(ino)) continue;
      out.push(stale(`session ${sid} holds inode ${ino} open, which does not exist`, ino, layout.sessionOpen(sid), { op: 'drop-hold', ino, sid, what: 'inode' }));
    }
  }
  for (const [ino, holders] of s.openBy) {
    const open = [...holders].filter((sid) => !endCovers(sid, ino, 'open'));
    if (open.length === 0) continue;
    if (!image.inodes.has(ino)) {
      out.push(stale(`${layout.openBy(ino)} lists holders of inode ${ino}, which does not exist`, ino, layout.openBy(ino), { op: 'drop-hold', ino, sid: '', what: 'inode' }));
      continue;
    }
    for (const sid of open.filter((x) => !known(x))) {
      out.push(stale(`inode ${ino} is held open by session ${sid}, which does not exist`, ino, layout.openBy(ino), { op: 'drop-hold', ino, sid, what: 'session' }));
    }
  }
  for (const ino of s.orphans) {
    const node = image.inodes.get(ino);
    if (removed.has(ino) || node?.readable === false) continue;
    const why = node ? `has ${node.nlink} link(s)` : 'does not exist';
    out.push(stale(`inode ${ino} is listed in ${layout.orphans} (files kept open after removal) but ${why}`, ino, layout.orphans, { op: 'sweep-orphan', ino }));
  }
  // Files removed while open.
  const keptOpen: FsckKeptOpen[] = [];
  for (const [ino, node] of [...removed].sort((a, b) => a[0] - b[0])) {
    const holders = [...(s.openBy.get(ino) ?? [])];
    const live = holders.filter(alive).sort();
    if (live.length > 0) {
      keptOpen.push({ ino, size: node.size, sessions: live });
      continue;
    }
    const dead = holders.length > 0 ? `; held only by session(s) that are not alive: ${holders.sort().join(', ')}` : '';
    out.push(
      finding(
        'removed-file-unheld',
        `inode ${ino} (${node.type}, ${node.size} bytes) has no name and link count 0, and no live session holds it open: its space is never freed${dead}`,
        { ino, key: layout.inodes(ino) },
        { op: 'free-removed', ino, nlink: node.rawNlink, ctime: node.rawCtime },
      ),
    );
  }
  // Locks of sessions that are not alive, which no session end will drop.
  for (const [ino, fields] of [...s.lockFields].sort((a, b) => a[0] - b[0])) {
    const owners = new Set<string>();
    for (const f of fields) {
      const sid = SID_FIELD.exec(f)?.[1];
      if (sid !== undefined && !alive(sid) && !endCovers(sid, ino, 'locked')) owners.add(sid);
    }
    if (owners.size === 0) continue;
    const list = [...owners].sort();
    out.push(
      finding('lock-stale', `inode ${ino} has locks of session(s) ${list.join(', ')}, which are not alive`, { ino, key: layout.flocks(ino) }, {
        op: 'drop-locks',
        ino,
        sids: list,
      }),
    );
  }
  // libfuse's hidden files, from mounts of earlier versions.
  for (const [dir, entries] of [...image.dirs].sort((a, b) => a[0] - b[0])) {
    for (const [name, value] of entries) {
      if (!FUSE_HIDDEN_NAME.test(name)) continue;
      const refs = entryRefs(layout, dir, name);
      out.push(
        finding(
          'fuse-hidden-entry',
          `entry '${shownEntry(name)}' of directory ${dir} is a file libfuse hid while it was open after removal, left by a mount of an earlier redisfs that ended before the last close`,
          refs,
          { op: 'unlink-entry', dir, name: refs.nameBytes!, value },
        ),
      );
    }
  }
  return { findings: out, sessions, keptOpen };
}

function stale(message: string, ino: number, key: string, action: SessionRepairAction): Finding {
  return finding('open-entry-stale', message, { ino, key }, action);
}

/** Applies a session repair. Returns what was done, or undefined when its condition no longer held. */
export async function applySessionRepair(
  client: RedisClient,
  layout: KeyLayout,
  action: SessionRepairAction,
  blockSize: number,
  scripts: ScriptRunner,
  done: (message: string) => FsckRepair,
): Promise<FsckRepair | undefined> {
  const run = (name: ScriptName, args: (string | Buffer)[]) => scripts.run(name, layout.metaPrefix, args);
  // Work a repair left for the collector (a freed file's map) is done here, as fsck does for orphans.
  const collect = async (queued: unknown) => {
    if (queued === '1') await releaseGcWork(client, scripts, layout, blockSize);
  };
  switch (action.op) {
    case 'end-session': {
      let steps = 0;
      for (;;) {
        const [state, queued] = (await run('endSession', [action.sid, ''])) as [string, string];
        await collect(queued);
        if (state === 'ALIVE') return undefined;
        steps++;
        if (state === 'DONE') break;
      }
      return done(`ended session ${action.sid}: its holds, locks and keys are gone (${steps} step(s))`);
    }
    case 'free-removed': {
      const [queued, freed] = (await run('fsckFreeRemoved', [String(action.ino), action.nlink, action.ctime])) as [string, string];
      await collect(queued);
      return freed === '1' ? done(`freed inode ${action.ino}, removed while open and held by no live session`) : undefined;
    }
    case 'drop-hold': {
      const changed = Number(await run('fsckDropHold', [String(action.ino), action.sid, action.what])) === 1;
      if (!changed) return undefined;
      return done(
        action.what === 'inode'
          ? `dropped the hold${action.sid ? ` of session ${action.sid}` : 's'} of inode ${action.ino}, which does not exist`
          : `dropped the hold of inode ${action.ino} by session ${action.sid}, which does not exist`,
      );
    }
    case 'sweep-orphan': {
      const [queued, freed, dropped] = (await run('sweepOrphans', [String(action.ino)])) as [string, number, number];
      await collect(queued);
      if (Number(freed) > 0) return done(`freed inode ${action.ino}, kept open after removal and held by nobody`);
      return Number(dropped) > 0 ? done(`took inode ${action.ino} off ${layout.orphans}`) : undefined;
    }
    case 'drop-locks': {
      const n = Number(await run('fsckDropLocks', [String(action.ino), ...action.sids]));
      return n > 0 ? done(`dropped ${n} lock(s) of session(s) ${action.sids.join(', ')} on inode ${action.ino}`) : undefined;
    }
    case 'unlink-entry': {
      const name = nameBytes(action.name);
      const [queued, unlinked] = (await run('fsckUnlink', [String(action.dir), name, Buffer.from(action.value, 'latin1'), nowNs()])) as [string, string];
      await collect(queued);
      return unlinked === '1' ? done(`unlinked '${showName(name)}' of directory ${action.dir}`) : undefined;
    }
  }
}
