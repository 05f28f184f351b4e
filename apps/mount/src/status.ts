/**
 * `redisfs status [--json]`: this host's redisfs mounts. Reads the runtime registry (control.ts):
 * drops entries whose process is gone or whose socket nobody listens on (a kill -9 leaves them),
 * asks each live mount for its statistics with a short timeout, and adds the fuse.redisfs mounts
 * of /proc/self/mountinfo that no entry accounts for (another user's, or one whose process died:
 * shown with what the kernel says).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { EXIT_OK, UsageError, exitCodeOf } from '@redisfs/cli-common';
import type { PendingWork } from '@redisfs/store';
import { entryPath, queryMount, runtimeDirs, socketPath, unsafeDirProblem, type LiveReport, type LiveStats, type RegistryEntry } from './control.js';
import type { Output } from './run.js';
import { VERSION, subcommandParser } from './subcommand-parser.js';

/** How long a mount may take to answer before it is listed as not answering. */
const QUERY_TIMEOUT_MS = 1500;
/** How long the stat of an unregistered mount may take (a hung FUSE server never answers). */
const STAT_TIMEOUT_MS = 300;

/**
 * How a mount is doing: `running` (it answered), `not answering` (its process lives but did not
 * answer in time), `unregistered` (the kernel lists it, no registry entry of this user does),
 * `disconnected` (the kernel lists it, its process is gone: `fusermount -u` it).
 */
export type MountState = 'running' | 'not answering' | 'unregistered' | 'disconnected';

/** One mount as `redisfs status --json` prints it; null where it is not known. */
export interface MountStatus {
  mountpoint: string;
  state: MountState;
  prefix: string | null;
  /** Where Redis is: a URL without password, or unix:<socket>. */
  server: string | null;
  pid: number | null;
  /** The mount's owner, from the kernel's mount options (unregistered mounts only). */
  uid: number | null;
  readOnly: boolean | null;
  mountedAt: string | null;
  uptimeSeconds: number | null;
  /** --metrics endpoint. */
  metrics: string | null;
  /** FUSE calls served since the mount, and those answered with an error. */
  operations: number | null;
  errors: number | null;
  /** Share of attribute lookups the cache answered (0..1); null before the first. */
  cacheHitRate: number | null;
  /** Everything the mount counts (see LiveStats). */
  stats: LiveStats | null;
  /** Work the background collector has still to do. */
  pending: PendingWork | null;
  /** The mount's session in Redis (what `redisfs fsck` lists; none on a read-only mount). */
  session: string | null;
  /** Files open through the mount (handles). */
  openFiles: number | null;
}

const sum = (values: Iterable<number>): number => [...values].reduce((a, b) => a + b, 0);

function fromEntry(entry: RegistryEntry, state: MountState): MountStatus {
  return {
    mountpoint: entry.mountpoint,
    state,
    prefix: entry.prefix,
    server: entry.server,
    pid: entry.pid,
    uid: null,
    readOnly: entry.readOnly,
    mountedAt: entry.mountedAt,
    uptimeSeconds: Math.max(0, Math.round((Date.now() - Date.parse(entry.mountedAt)) / 1000)),
    metrics: entry.metrics,
    operations: null,
    errors: null,
    cacheHitRate: null,
    stats: null,
    pending: null,
    session: null,
    openFiles: null,
  };
}

function fromReport(report: LiveReport): MountStatus {
  const { stats } = report;
  const { hits, misses } = stats.cache.attr;
  return {
    ...fromEntry(report, 'running'),
    uptimeSeconds: report.uptimeSeconds,
    operations: sum(Object.values(stats.fuseCalls)),
    errors: sum(Object.values(stats.fuseErrors).flatMap((byErrno) => Object.values(byErrno))),
    cacheHitRate: hits + misses > 0 ? hits / (hits + misses) : null,
    stats,
    pending: report.pending,
    session: stats.session?.id ?? null,
    openFiles: stats.session?.openHandles ?? null,
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const REGISTRY_FILE = /^(\d+)\.(json|sock|json\.tmp)$/;

/** Removes what the registry holds for `pid` in `dir`. */
async function dropEntry(dir: string, pid: number): Promise<void> {
  await Promise.all(
    [entryPath(dir, pid), socketPath(dir, pid), `${entryPath(dir, pid)}.tmp`].map((p) => rm(p, { force: true }).catch(() => undefined)),
  );
}

/** The registered mounts of one registry directory, stale entries removed. */
async function registeredIn(dir: string): Promise<MountStatus[]> {
  let names: string[];
  try {
    if (await unsafeDirProblem(dir)) return []; // not this user's registry: never trusted, never cleaned
    names = await readdir(dir);
  } catch {
    return [];
  }
  const pids = new Set(names.flatMap((n) => REGISTRY_FILE.exec(n)?.[1] ?? []).map(Number));
  const found = await Promise.all(
    [...pids].map(async (pid): Promise<MountStatus | undefined> => {
      if (!isAlive(pid)) {
        await dropEntry(dir, pid);
        return undefined;
      }
      let entry: RegistryEntry;
      try {
        entry = JSON.parse(await readFile(entryPath(dir, pid), 'utf8')) as RegistryEntry;
      } catch {
        return undefined; // still registering (its socket comes first), or not ours to judge
      }
      try {
        return fromReport(await queryMount(socketPath(dir, pid), QUERY_TIMEOUT_MS));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ECONNREFUSED') {
          // Nobody listens: the mount died and its pid went to another process.
          await dropEntry(dir, pid);
          return undefined;
        }
        return fromEntry(entry, 'not answering');
      }
    }),
  );
  return found.filter((m): m is MountStatus => m !== undefined);
}

/** A fuse.redisfs line of mountinfo. */
interface KernelMount {
  mountpoint: string;
  uid: number | null;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The redisfs mounts of mountinfo text (proc(5): `id parent maj:min root mountpoint opts [tags] - fstype source superopts`). */
export function redisfsMounts(mountinfo: string): KernelMount[] {
  const mounts: KernelMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields[dash + 1] !== 'fuse.redisfs') continue;
    const uid = /(?:^|,)user_id=(\d+)(?:,|$)/.exec(fields[dash + 3] ?? '')?.[1];
    mounts.push({ mountpoint: unescapeOctal(fields[4] ?? ''), uid: uid === undefined ? null : Number(uid) });
  }
  return mounts;
}

/** `disconnected` when the mount's FUSE server is gone (ENOTCONN), else `unregistered`. */
async function kernelMountState(mountpoint: string): Promise<MountState> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STAT_TIMEOUT_MS)));
  const outcome = await Promise.race([stat(mountpoint).then(() => 'ok', (err: NodeJS.ErrnoException) => err.code ?? 'error'), late]);
  clearTimeout(timer);
  return outcome === 'ENOTCONN' ? 'disconnected' : 'unregistered';
}

function fromKernel(mount: KernelMount, state: MountState): MountStatus {
  return {
    mountpoint: mount.mountpoint, state, prefix: null, server: null, pid: null, uid: mount.uid, readOnly: null, mountedAt: null,
    uptimeSeconds: null, metrics: null, operations: null, errors: null, cacheHitRate: null, stats: null, pending: null, session: null, openFiles: null,
  };
}

/** This host's redisfs mounts, by mountpoint (registered in `dirs`, or listed by the kernel). */
export async function listMounts(dirs: readonly string[] = runtimeDirs()): Promise<MountStatus[]> {
  const [registered, mountinfo] = await Promise.all([
    Promise.all(dirs.map(registeredIn)).then((lists) => lists.flat()),
    readFile('/proc/self/mountinfo', 'utf8').catch(() => ''),
  ]);
  const known = new Set(registered.map((m) => m.mountpoint));
  const others = redisfsMounts(mountinfo).filter((m) => !known.has(m.mountpoint));
  const unregistered = await Promise.all(others.map(async (m) => fromKernel(m, await kernelMountState(m.mountpoint))));
  return [...registered, ...unregistered].sort((a, b) => a.mountpoint.localeCompare(b.mountpoint));
}

/** 3725 s → "1h02m". */
export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${two(h)}h`;
  if (h > 0) return `${h}h${two(m)}m`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/** "3 files, 120 blocks, 1 filesystem" to collect; "0" when nothing is pending. */
export function formatPending(p: PendingWork | null): string {
  if (!p) return '-';
  const parts: string[] = [];
  const add = (n: number, one: string) => n > 0 && parts.push(`${n} ${one}${n === 1 ? '' : 's'}`);
  add(p.gcInodes, 'file');
  add(p.freeBlocks, 'block');
  add(p.deadMembers, 'filesystem');
  add(p.deadSessions, 'dead session');
  return parts.length > 0 ? parts.join(', ') : '0';
}

function stateText(m: MountStatus): string {
  switch (m.state) {
    case 'unregistered':
      return m.uid === null ? 'not registered' : `not registered (uid ${m.uid})`;
    case 'disconnected':
      return 'disconnected: its process is gone (fusermount -u it)';
    default:
      return m.state;
  }
}

/** The human table, one row per mount (like `redisfs-snapshot list`). */
export function formatStatus(mounts: MountStatus[]): string[] {
  const dash = (v: string | number | null) => (v === null ? '-' : String(v));
  const rows = [
    ['MOUNTPOINT', 'PREFIX', 'SERVER', 'PID', 'SESSION', 'UPTIME', 'OPS', 'ERRORS', 'CACHE HITS', 'OPEN', 'PENDING', 'STATE'],
    ...mounts.map((m) => [
      m.mountpoint,
      dash(m.prefix),
      dash(m.server),
      dash(m.pid),
      dash(m.session),
      m.uptimeSeconds === null ? '-' : formatUptime(m.uptimeSeconds),
      dash(m.operations),
      dash(m.errors),
      m.cacheHitRate === null ? '-' : `${Math.round(m.cacheHitRate * 100)}%`,
      dash(m.openFiles),
      formatPending(m.pending),
      stateText(m),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

async function parseStatusArgs(args: string[]): Promise<{ json: boolean } | undefined> {
  const argv = await subcommandParser(
    'status',
    args,
    "$0 [--json]\n\nList this host's redisfs mounts: mountpoint, prefix, server, pid, uptime, its session in Redis, operations and errors so far, attribute cache hit rate, files open, background work pending.",
  )
    .option('json', { type: 'boolean', default: false, describe: 'print a JSON array (one object per mount) for scripts' })
    .strict()
    .help()
    .version(VERSION)
    .parseAsync();
  if (argv.help || argv.version) return undefined;
  if (argv._.length > 0) throw new UsageError(`redisfs status takes no arguments, got ${String(argv._[0])} (see redisfs status --help)`);
  return { json: argv.json };
}

/** `redisfs status [--json]`: exit 0 (also with no mounts), 2 on a usage error. */
export async function runStatusCommand(args: string[], io: Output): Promise<number> {
  let options: { json: boolean } | undefined;
  try {
    options = await parseStatusArgs(args);
  } catch (err) {
    io.err(`redisfs status: ${err instanceof Error ? err.message : String(err)}`);
    return exitCodeOf(err);
  }
  if (!options) return EXIT_OK;
  const mounts = await listMounts();
  if (options.json) io.out(JSON.stringify(mounts, null, 2));
  else if (mounts.length === 0) io.out('no redisfs mounts on this host');
  else for (const line of formatStatus(mounts)) io.out(line);
  return EXIT_OK;
}
