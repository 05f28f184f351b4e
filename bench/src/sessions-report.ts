/**
 * Issue 13's figures (sessions and locks across mounts): open + close and lock latency per
 * target, as ratios to tmpfs and, with `--baseline`, to the other build on the same socket.
 */
import type { LockKind } from './lock-latency.js';
import type { OpenFlags } from './open-close.js';
import type { CommandCounts } from './redis-stats.js';
import type { RunResult, TargetResult } from './report.js';
import type { TargetName } from './targets.js';

export interface OpenCloseFigure {
  target: TargetName;
  flags: OpenFlags;
  usPerPair: number;
  xTmpfs?: number;
  /** Against memfs: what is left once the FUSE binding's own cost is out. */
  xMemfs?: number;
  /** Against baseline-tcp / baseline-unix for redisfs-tcp / redisfs-unix (--baseline). */
  xBaseline?: number;
  roundTripsPerPair?: number;
}

export interface LockFigure {
  target: TargetName;
  kind: LockKind;
  mounts: 1 | 2;
  uncontendedUs: number;
  uncontendedXTmpfs?: number;
  handoffP50Us: number;
  handoffP95Us: number;
  handoffXTmpfs?: number;
  roundTripsPerPair?: number;
  roundTripsPerHandoff?: number;
}

export interface SessionsSummary {
  openClose: OpenCloseFigure[];
  locks: LockFigure[];
  /** Targets whose lock measurement failed, and why. */
  lockErrors: { target: TargetName; error: string }[];
}

function baselineOf(run: RunResult, name: TargetName): TargetResult | undefined {
  const m = /^redisfs-(tcp|unix)$/.exec(name);
  return m ? run.targets.find((t) => t.target === `baseline-${m[1]}`) : undefined;
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a !== undefined && b ? a / b : undefined);

export function summariseSessions(run: RunResult): SessionsSummary | undefined {
  const tmpfs = run.targets.find((t) => t.target === 'tmpfs');
  const memfs = run.targets.find((t) => t.target === 'memfs');
  const out: SessionsSummary = { openClose: [], locks: [], lockErrors: [] };
  for (const t of run.targets) {
    const base = baselineOf(run, t.target);
    for (const r of t.openClose ?? []) {
      const onTmpfs = tmpfs?.openClose?.find((x) => x.flags === r.flags);
      const onBase = base?.openClose?.find((x) => x.flags === r.flags);
      const onMemfs = t === memfs || t === tmpfs ? undefined : memfs?.openClose?.find((x) => x.flags === r.flags);
      out.openClose.push({
        target: t.target,
        flags: r.flags,
        usPerPair: r.usPerPair,
        ...defined({
          xTmpfs: t === tmpfs ? undefined : ratio(r.usPerPair, onTmpfs?.usPerPair),
          xMemfs: ratio(r.usPerPair, onMemfs?.usPerPair),
          xBaseline: ratio(r.usPerPair, onBase?.usPerPair),
        }),
        ...defined({ roundTripsPerPair: r.roundTripsPerPair }),
      });
    }
    if (t.locks?.error) out.lockErrors.push({ target: t.target, error: t.locks.error });
    for (const k of t.locks?.kinds ?? []) {
      const onTmpfs = t === tmpfs ? undefined : tmpfs?.locks?.kinds.find((x) => x.kind === k.kind);
      out.locks.push({
        target: t.target,
        kind: k.kind,
        mounts: t.locks!.mounts,
        uncontendedUs: k.uncontended.usPerPair,
        handoffP50Us: k.handoff.latency.p50Us,
        handoffP95Us: k.handoff.latency.p95Us,
        ...defined({
          uncontendedXTmpfs: ratio(k.uncontended.usPerPair, onTmpfs?.uncontended.usPerPair),
          handoffXTmpfs: ratio(k.handoff.latency.p50Us, onTmpfs?.handoff.latency.p50Us),
          roundTripsPerPair: k.uncontended.roundTripsPerPair,
          roundTripsPerHandoff: k.handoff.roundTripsPerHandoff,
        }),
      });
    }
  }
  return out.openClose.length + out.locks.length + out.lockErrors.length > 0 ? out : undefined;
}

/** The entries of `o` that are not undefined (the JSON keeps no empty keys). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function us(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function times(x: number | undefined, what: string): string | undefined {
  return x === undefined ? undefined : `${x >= 10 ? x.toFixed(0) : x.toFixed(2)}× ${what}`;
}

/** "EVALSHA open 1.00, EVALSHA release 1.00": the commands per unit, largest first. */
function perUnit(counts: CommandCounts | undefined, units: number): string {
  if (!counts || units === 0) return '';
  return Object.entries(counts)
    .slice(0, 5)
    .map(([k, v]) => `${k} ${v / units >= 0.01 ? (v / units).toFixed(2) : (v / units).toPrecision(1)}`)
    .join(', ');
}

export function printSessions(run: RunResult): void {
  const s = run.summary?.sessions;
  if (!s) return;
  const out: string[] = [''];
  if (s.openClose.length > 0) {
    out.push('open + close of an existing file (µs per pair; Redis round trips per pair, by command, redisfs\'s own counts)');
    for (const f of s.openClose) {
      const r = run.targets.find((t) => t.target === f.target)?.openClose?.find((x) => x.flags === f.flags);
      const ratios = [times(f.xTmpfs, 'tmpfs'), times(f.xMemfs, 'memfs'), times(f.xBaseline, 'baseline')].filter(Boolean).join(', ');
      const trips = f.roundTripsPerPair === undefined ? '' : `  ${f.roundTripsPerPair.toFixed(2)} trips [${perUnit(r?.roundTrips, r?.pairs ?? 0)}]`;
      out.push(`  ${pad(f.target, 14)} ${pad(f.flags, 3)} ${lpad(us(f.usPerPair), 8)} µs${ratios ? ` (${ratios})` : ''}${trips}`);
    }
    out.push('');
  }
  if (s.locks.length + s.lockErrors.length > 0) {
    out.push('locks: uncontended lock + unlock, µs per pair; hand-off from an unlock on mount A to the waiter on mount B, µs p50 / p95');
    if (run.targets.some((t) => t.target === 'memfs')) out.push('  (memfs has no lock handlers, the kernel keeps its locks: not measured)');
    for (const f of s.locks) {
      const k = run.targets.find((t) => t.target === f.target)?.locks?.kinds.find((x) => x.kind === f.kind);
      const a = [times(f.uncontendedXTmpfs, 'tmpfs'), f.roundTripsPerPair === undefined ? undefined : `${f.roundTripsPerPair.toFixed(2)} trips`]
        .filter(Boolean)
        .join(', ');
      const b = [times(f.handoffXTmpfs, 'tmpfs'), f.roundTripsPerHandoff === undefined ? undefined : `${f.roundTripsPerHandoff.toFixed(2)} trips`]
        .filter(Boolean)
        .join(', ');
      out.push(
        `  ${pad(f.target, 14)} ${pad(f.kind, 6)} uncontended ${lpad(us(f.uncontendedUs), 7)}${a ? ` (${a})` : ''}   ` +
          `hand-off ${us(f.handoffP50Us)} / ${us(f.handoffP95Us)}${b ? ` (${b})` : ''}` +
          `${k ? `, unlock call ${us(k.handoff.unlock.p50Us)}` : ''}${f.mounts === 1 ? ', one path' : ''}`,
      );
      if (k?.uncontended.roundTrips) out.push(`       per uncontended pair: [${perUnit(k.uncontended.roundTrips, k.uncontended.pairs + 1)}]`);
      if (k?.handoff.roundTrips) out.push(`       per hand-off, both mounts: [${perUnit(k.handoff.roundTrips, k.handoff.latency.samples)}]`);
    }
    for (const e of s.lockErrors) out.push(`  ${pad(e.target, 14)} FAILED: ${e.error}`);
    out.push('');
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
