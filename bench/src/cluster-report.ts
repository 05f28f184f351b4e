/**
 * The targets of the Redis Cluster issue, checked on one run's results, and their part of the
 * report: (a) data blocks spread evenly over 3 masters, (b) sequential throughput higher on 3
 * masters than on 1, (c) small-file workloads in cluster mode within 10% of the single server,
 * (d) metadata bytes per file on the master of the filesystem's slot, and the files that slot can
 * then hold, (e) what --sync-replicas 1 costs against the same master and replica without it.
 * Every comparison is between targets of the same run.
 */
import type { MasterBlocks } from './cluster-stats.js';
import { type Check, type RunResult, type TargetResult, type WorkloadResult, workloadSeconds } from './report.js';
import { CLUSTER_TARGETS, type TargetName } from './targets.js';

/** Creating, listing, reading and renaming small files: the workloads where a round trip is the cost. */
export const SMALL_FILE_WORKLOADS: readonly number[] = [1, 2, 3, 6];
const SHARE_TOLERANCE = 0.05;
const CLUSTER_VS_SINGLE_MAX = 1.1;
const METADATA_BYTES_PER_FILE_MAX = 150;
/** The master size the files-per-slot figure is given for. */
const MASTER_BYTES = 64 * 2 ** 30;
const MiB = 2 ** 20;

export interface ClusterSummary {
  /** (a) Data blocks per master of cluster-tcp, counted before workload 8 deleted them. */
  blockShare?: { target: TargetName; afterWorkloads: number[]; blocks: number; blockBytes: number; masters: MasterBlocks[] };
  /** (b) Workload 4 on cluster-tcp (3 masters) and cluster1-tcp (1), MiB/s. */
  throughput?: { write: Throughput; read: Throughput };
  /** (c) Each workload on cluster-tcp and cluster1-tcp against redisfs-tcp (the single server). */
  vsSingle: VsSingle[];
  /** (d) Redis bytes per empty file on the node holding the metadata, per redisfs target measured. */
  metadata: { target: TargetName; bytesPerFile: number; filesPer64GiB: number }[];
  /** (e) sync1-tcp against nosync1-tcp, per workload. */
  sync?: { workloads: SyncCost[]; geomean: number };
  /** The verdicts: met or missed, never failing the run. */
  checks: Check[];
}

export interface Throughput {
  threeMasters: number;
  oneMaster: number;
  /** threeMasters / oneMaster */
  ratio: number;
}

export interface VsSingle {
  target: TargetName;
  id: number;
  name: string;
  seconds: number;
  singleSeconds: number;
  /** seconds / singleSeconds: the cost of each operation against the single server's (same operations). */
  ratio: number;
  /** Microseconds per unit of the first phase (file, write, …). */
  perOpUs: number;
  singlePerOpUs: number;
  unit: string;
}

export interface SyncCost {
  id: number;
  name: string;
  syncSeconds: number;
  noSyncSeconds: number;
  ratio: number;
  /** WAIT commands the master served during the workload (INFO commandstats). */
  waits: number;
}

function find(run: RunResult, target: TargetName): TargetResult | undefined {
  return run.targets.find((t) => t.target === target);
}

function ok(w: WorkloadResult | undefined): w is WorkloadResult {
  return w !== undefined && !w.error && w.phases.length > 0;
}

function mibps(t: TargetResult | undefined, phase: number): number | undefined {
  const p = t?.workloads.find((w) => w.id === 4 && !w.error)?.phases[phase];
  return p ? p.ops / MiB / p.seconds : undefined;
}

function geomean(xs: number[]): number {
  return Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
}

function vsSingle(target: TargetResult, single: TargetResult): VsSingle[] {
  const out: VsSingle[] = [];
  for (const w of target.workloads) {
    const b = single.workloads.find((x) => x.id === w.id);
    if (!ok(w) || !ok(b)) continue;
    const seconds = workloadSeconds(w);
    const singleSeconds = workloadSeconds(b);
    const ops = w.phases[0]!.ops;
    out.push({
      target: target.target,
      id: w.id,
      name: w.name,
      seconds,
      singleSeconds,
      ratio: seconds / singleSeconds,
      perOpUs: (seconds / ops) * 1e6,
      singlePerOpUs: (singleSeconds / ops) * 1e6,
      unit: w.phases[0]!.unit.replace(/s$/, ''),
    });
  }
  return out;
}

/** The cluster figures and verdicts of a run; undefined when it had no cluster target. */
export function summariseCluster(run: RunResult): ClusterSummary | undefined {
  if (!run.targets.some((t) => CLUSTER_TARGETS.includes(t.target))) return undefined;
  const checks: Check[] = [];
  const add = (target: TargetName, what: string, value: number, limit: string, met: boolean) => checks.push({ target, what, value, limit, ok: met });
  const cluster: ClusterSummary = { vsSingle: [], metadata: [], checks };
  const three = find(run, 'cluster-tcp');
  const one = find(run, 'cluster1-tcp');
  const single = find(run, 'redisfs-tcp');

  const share = three?.blockShare;
  if (share && share.blocks > 0) {
    cluster.blockShare = { target: 'cluster-tcp', ...share };
    const even = 1 / share.masters.length;
    for (const m of share.masters) {
      const label = `(a) block bytes on ${m.address}${m.metadata ? ' (metadata)' : ''}, %`;
      add('cluster-tcp', label, m.share * 100, `${(even * 100).toFixed(1)} ± ${SHARE_TOLERANCE * 100}`, Math.abs(m.share - even) <= SHARE_TOLERANCE);
    }
  }

  const rate = (phase: number): Throughput | undefined => {
    const a = mibps(three, phase);
    const b = mibps(one, phase);
    return a && b ? { threeMasters: a, oneMaster: b, ratio: a / b } : undefined;
  };
  const write = rate(0);
  const read = rate(1);
  if (write && read) {
    cluster.throughput = { write, read };
    add('cluster-tcp', '(b) seq write MiB/s, 3 masters / 1 master', write.ratio, '> 1', write.ratio > 1);
    add('cluster-tcp', '(b) seq read MiB/s, 3 masters / 1 master', read.ratio, '> 1', read.ratio > 1);
  }

  if (single) {
    for (const t of [one, three]) if (t) cluster.vsSingle.push(...vsSingle(t, single));
    for (const v of cluster.vsSingle) {
      if (v.target !== 'cluster-tcp' || !SMALL_FILE_WORKLOADS.includes(v.id)) continue;
      add('cluster-tcp', `(c) time / redisfs-tcp: ${v.id}. ${v.name}`.slice(0, 56), v.ratio, `≤ ${CLUSTER_VS_SINGLE_MAX.toFixed(2)}`, v.ratio <= CLUSTER_VS_SINGLE_MAX);
    }
  }

  for (const t of run.targets) {
    if (!t.memory || !(t.target === 'redisfs-tcp' || t.target.startsWith('cluster'))) continue;
    const bytesPerFile = t.memory.bytesPerEmptyFile;
    cluster.metadata.push({ target: t.target, bytesPerFile, filesPer64GiB: MASTER_BYTES / bytesPerFile });
    if (t.target === 'cluster-tcp') {
      add(t.target, '(d) metadata master: bytes per empty file', bytesPerFile, `≤ ${METADATA_BYTES_PER_FILE_MAX}`, bytesPerFile <= METADATA_BYTES_PER_FILE_MAX);
      add(t.target, '(d) files of one slot on a 64 GiB master, millions', MASTER_BYTES / bytesPerFile / 1e6, '(info)', true);
    }
  }

  const sync = find(run, 'sync1-tcp');
  const noSync = find(run, 'nosync1-tcp');
  if (sync && noSync) {
    const costs: SyncCost[] = [];
    for (const w of sync.workloads) {
      const b = noSync.workloads.find((x) => x.id === w.id);
      if (!ok(w) || !ok(b)) continue;
      const syncSeconds = workloadSeconds(w);
      const noSyncSeconds = workloadSeconds(b);
      costs.push({ id: w.id, name: w.name, syncSeconds, noSyncSeconds, ratio: syncSeconds / noSyncSeconds, waits: w.commands?.wait ?? 0 });
    }
    if (costs.length > 0) {
      cluster.sync = { workloads: costs, geomean: geomean(costs.map((c) => c.ratio)) };
      const worst = costs.reduce((a, c) => (c.ratio > a.ratio ? c : a));
      add('sync1-tcp', '(e) --sync-replicas 1 / none: geomean time', cluster.sync.geomean, '(info)', true);
      add('sync1-tcp', `(e) … slowest: ${worst.id}. ${worst.name}`.slice(0, 56), worst.ratio, '(info)', true);
    }
  }
  return cluster;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function fmtSeconds(s: number): string {
  return s >= 100 ? s.toFixed(0) : s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2) : s.toFixed(3);
}

/** The cluster section of the report and its verdicts (after printReport's); nothing when the run had no cluster target. */
export function printCluster(summary: ClusterSummary | undefined): void {
  if (!summary) return;
  const { blockShare, throughput, vsSingle: rows, metadata, sync, checks } = summary;
  const out: string[] = [''];
  out.push('Redis Cluster (issue: cluster mode, comparisons within this run)');
  if (blockShare) {
    const after = blockShare.afterWorkloads.join(', ');
    out.push(`  (a) data blocks per master of ${blockShare.target} after workloads ${after}: ${blockShare.blocks} blocks, ${(blockShare.blockBytes / MiB).toFixed(0)} MiB (STRLEN)`);
    for (const m of blockShare.masters) {
      out.push(
        `      ${pad(m.address + (m.metadata ? ' (metadata)' : ''), 28)} ${lpad(String(m.blocks), 8)} blocks ${lpad((m.blockBytes / MiB).toFixed(0), 7)} MiB ${lpad((m.share * 100).toFixed(1), 6)}%   used_memory ${(m.usedMemory / MiB).toFixed(0)} MiB`,
      );
    }
  }
  if (throughput) {
    const { write: w, read: r } = throughput;
    out.push(`  (b) sequential MiB/s, cluster-tcp (3 masters) / cluster1-tcp (1): write ${w.threeMasters.toFixed(0)} / ${w.oneMaster.toFixed(0)} = ${w.ratio.toFixed(2)}, read ${r.threeMasters.toFixed(0)} / ${r.oneMaster.toFixed(0)} = ${r.ratio.toFixed(2)}`);
  }
  if (rows.length > 0) {
    out.push('  (c) seconds against the single server redisfs-tcp (× its time = × its cost per operation: same operations); µs per file for small-file workloads');
    const targets = [...new Set(rows.map((v) => v.target))];
    out.push(`      ${pad('workload', 40)}${lpad('redisfs-tcp', 16)}${targets.map((t) => lpad(t, 22)).join('')}`);
    for (const id of [...new Set(rows.map((v) => v.id))].sort((a, b) => a - b)) {
      const mine = rows.filter((v) => v.id === id);
      const first = mine[0]!;
      const small = SMALL_FILE_WORKLOADS.includes(id);
      const cell = (s: number, us: number) => `${fmtSeconds(s)}${small ? ` ${us.toFixed(0)}µs` : ''}`;
      const cells = targets.map((t) => {
        const v = mine.find((x) => x.target === t);
        return lpad(v ? `${cell(v.seconds, v.perOpUs)} (${v.ratio.toFixed(2)}×)` : '-', 22);
      });
      out.push(`      ${pad(`${id}. ${first.name}`.slice(0, 39), 40)}${lpad(cell(first.singleSeconds, first.singlePerOpUs), 16)}${cells.join('')}`);
    }
  }
  if (metadata.length > 0) {
    out.push('  (d) Redis bytes per empty file on the node holding the metadata; files one slot holds on a 64 GiB master at that rate');
    for (const m of metadata) out.push(`      ${pad(m.target, 14)} ${lpad(m.bytesPerFile.toFixed(0), 5)} B   ${(m.filesPer64GiB / 1e6).toFixed(0)} million files`);
  }
  if (sync) {
    out.push('  (e) --sync-replicas 1 (sync1-tcp) against the same master + replica without it (nosync1-tcp): seconds, ratio, WAITs served');
    for (const c of sync.workloads) {
      out.push(`      ${pad(`${c.id}. ${c.name}`.slice(0, 39), 40)}${lpad(fmtSeconds(c.noSyncSeconds), 8)}${lpad(fmtSeconds(c.syncSeconds), 8)}${lpad(`${c.ratio.toFixed(2)}×`, 8)}${lpad(String(c.waits), 9)} WAIT`);
    }
    out.push(`      ${pad('geometric mean', 56)}${lpad(`${sync.geomean.toFixed(2)}×`, 8)}`);
  }
  out.push('');
  out.push('targets (Redis Cluster)');
  for (const c of checks) {
    out.push(`  ${c.ok ? 'met   ' : 'MISSED'} ${pad(c.target, 14)} ${pad(c.what, 56)} ${lpad(c.value.toFixed(2), 8)}  ${c.limit}`);
  }
  if (checks.length === 0) out.push('  none measured: (a, b) need cluster-tcp and cluster1-tcp, (c) also redisfs-tcp, (d) cluster-tcp, (e) sync1-tcp');
  process.stdout.write(`${out.join('\n')}\n`);
}
