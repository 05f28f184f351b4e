/**
 * `redisfs fsck`: parses (fsck-args.ts), runs the store's checkFilesystem, prints the report and
 * maps it to an exit code, as e2fsck does. All checking lives in @redisfs/store.
 */
import { UsageError, resolveDefaultRedis, type PrivateRedis, type Progress, type ProgressUpdate } from '@redisfs/cli-common';
import {
  checkFilesystem, describeTarget, type FsckKeptOpen, type FsckPending, type FsckProblem, type FsckProgress, type FsckReport, type FsckSession,
} from '@redisfs/store';
import { parseFsckArgs, type FsckConfig } from './fsck-args.js';

/** No problem found. */
export const FSCK_EXIT_CLEAN = 0;
/** Problems found, and all of them repaired. */
export const FSCK_EXIT_REPAIRED = 1;
/** Problems left: found without --repair, or not all fixed. */
export const FSCK_EXIT_PROBLEMS_LEFT = 4;
/** The check could not run: Redis unreachable or failing, no filesystem at the prefix. */
export const FSCK_EXIT_OPERATIONAL = 8;
/** Bad command line. */
export const FSCK_EXIT_USAGE = 16;

/** Where output goes; the caller scrubs secrets from every line. */
export interface FsckOutput {
  out(line: string): void;
  err(line: string): void;
  /** Starts the progress display (stderr) of a job whose lines begin with `label`; absent: none. */
  progress?: ((label: string) => Progress) | undefined;
}

/** Runs `redisfs fsck <args>` (the arguments after `fsck`) and returns the exit code. */
export async function runFsckCommand(args: string[], io: FsckOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: FsckConfig;
  // Told nothing: 127.0.0.1:6379, or else the private server (started if need be), held until done.
  let privateRedis: PrivateRedis | undefined;
  try {
    const command = await parseFsckArgs(args, env);
    if (command.kind === 'done') return FSCK_EXIT_CLEAN;
    config = command.config;
    if (config.url === undefined && config.socket === undefined) {
      privateRedis = await resolveDefaultRedis({ env });
      config = { ...config, socket: privateRedis?.socket };
    }
  } catch (err) {
    io.err(`redisfs fsck: ${messageOf(err)}`);
    return err instanceof UsageError ? FSCK_EXIT_USAGE : FSCK_EXIT_OPERATIONAL;
  }
  try {
    return await checkAndReport(config, io);
  } finally {
    privateRedis?.release();
  }
}

async function checkAndReport(config: FsckConfig, io: FsckOutput): Promise<number> {
  let report: FsckReport;
  const shown = io.progress?.(`redisfs fsck: '${config.prefix}'`);
  try {
    report = await checkFilesystem({
      url: config.url,
      socket: config.socket,
      prefix: config.prefix,
      repair: config.repair,
      onProgress: shown && ((p) => shown.update(progressUpdate(p))),
    });
    shown?.finish();
  } catch (err) {
    shown?.abort();
    io.err(`redisfs fsck: ${messageOf(err)}`);
    return FSCK_EXIT_OPERATIONAL;
  }
  // A name's exact bytes (FsckProblem.nameBytes) as hex, not Buffer's JSON (one number per line).
  // (The replacer sees what toJSON made of a Buffer; the holder still has the Buffer.)
  if (config.json) {
    io.out(JSON.stringify(report, function (this: Record<string, unknown>, key: string, value: unknown) {
      const raw = this[key];
      return Buffer.isBuffer(raw) ? raw.toString('hex') : value;
    }, 2));
  }
  else for (const line of formatReport(report, { where: describeTarget(config), repair: config.repair })) io.out(line);
  return fsckExitCode(report);
}

/** How a phase of the check reads, and what it counts (a check after repairs says its pass). */
export function progressUpdate(p: FsckProgress): ProgressUpdate {
  const [phase, unit] = FSCK_PHASES[p.phase];
  return { phase: p.pass > 1 && p.phase !== 'repair' ? `pass ${p.pass}, ${phase}` : phase, unit, done: p.done, total: p.total };
}

const FSCK_PHASES: Record<FsckProgress['phase'], [phase: string, unit: string]> = {
  metadata: ['metadata', 'inodes'],
  blocks: ['data blocks', 'blocks'],
  maps: ['block maps', 'maps'],
  refcounts: ['reference counts', 'entries'],
  repair: ['repairing', 'repairs'],
};

/** The e2fsck-style exit code of a report. */
export function fsckExitCode(report: FsckReport): number {
  if (report.problems.length === 0) return FSCK_EXIT_CLEAN;
  // Without repair, `remaining` is `problems`.
  return report.remaining.length === 0 ? FSCK_EXIT_REPAIRED : FSCK_EXIT_PROBLEMS_LEFT;
}

/**
 * One line per session (mount) and per file kept open after removal, one per problem (then per
 * repair and per problem left), the collector's pending work, and a summary line.
 */
export function formatReport(report: FsckReport, options: { where: string; repair: boolean }): string[] {
  const lines = [...(report.sessions ?? []).map(sessionLine), ...(report.keptOpen ?? []).map(keptOpenLine)];
  lines.push(...report.problems.map(problemLine));
  for (const r of report.repaired) lines.push(`fixed: ${r.message}`);
  if (options.repair) for (const p of report.remaining) lines.push(`left: ${problemLine(p)}`);
  const pending = pendingLine(report.pending);
  if (pending) lines.push(pending);
  const { inodes, directories, entries, blocks, familyBlocks } = report.counts;
  const found = `${count(report.problems.length, 'problem')} found`;
  let verdict: string;
  if (report.problems.length === 0) verdict = 'clean';
  else if (report.fatal) verdict = `${found} (fatal: nothing else was checked)`;
  else if (options.repair) verdict = `${found}, ${count(report.repaired.length, 'repair')} made, ${report.remaining.length} left`;
  else verdict = report.problems.some((p) => p.repairable) ? `${found}; run with --repair on a quiet filesystem to fix` : found;
  // Members of a family share blocks: what the family stores is said when it differs.
  const family = familyBlocks === blocks ? '' : ` (${familyBlocks} stored in its family)`;
  const seen = `${count(inodes, 'inode')} (${count(directories, 'directory', 'directories')}), ${count(entries, 'entry', 'entries')}, ${count(blocks, 'block')}${family}`;
  lines.push(`${report.prefix} on ${options.where}: ${seen}: ${verdict}`);
  return lines;
}

/** What the collector has still to do (not a problem): one line, or undefined when nothing. */
function pendingLine(p: FsckPending): string | undefined {
  const parts = [
    p.gcInodes > 0 ? `${count(p.gcInodes, 'file')} with blocks to release` : '',
    p.freeBlocks > 0 ? `${count(p.freeBlocks, 'unreferenced block')} to delete` : '',
    p.deadMembers > 0 ? `${count(p.deadMembers, 'deleted filesystem')} of the family to release` : '',
  ].filter((part) => part !== '');
  if (parts.length === 0) return undefined;
  return `pending: ${parts.join(', ')} (collection in progress: a read-write mount of the family does it)`;
}

/** `session <id>: <host> pid <pid> at <mountpoint>, up 1h 2m, alive (lease 40 s left), 2 open files, locks on 1 inode`. */
export function sessionLine(s: FsckSession): string {
  const who = s.host ? `${s.host} pid ${s.pid}` : 'unknown host';
  const where = s.mountpoint ? ` at ${s.mountpoint}` : '';
  const age = s.startedMs > 0 ? `, up ${duration(s.ageMs)}` : '';
  const nowMs = s.startedMs + s.ageMs;
  let state: string;
  if (s.alive) state = `alive (lease ${duration(Math.max(0, s.expiresMs - nowMs))} left)`;
  else if (s.expiresMs === 0) state = 'dead, not fully ended';
  else state = s.startedMs > 0 ? `expired ${duration(Math.max(0, nowMs - s.expiresMs))} ago` : 'expired';
  const version = s.version ? `, redisfs ${s.version}` : '';
  return `session ${s.id}: ${who}${where}${version}${age}, ${state}, ${count(s.openFiles, 'open file')}, locks on ${count(s.locks, 'inode')}`;
}

function keptOpenLine(k: FsckKeptOpen): string {
  return `kept open after removal: inode ${k.ino} (${count(k.size, 'byte')}), held by session ${k.sessions.join(', ')}`;
}

/** 3 s, 4m 5s, 2h 3m, 1d 2h. */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function problemLine(p: FsckProblem): string {
  return `${p.kind}: ${p.message}${p.repairable ? '' : ' (not repairable)'}`;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
