/**
 * Progress of the long jobs (snapshot, restore, delete, fsck, upgrade) on stderr, the same in
 * both CLIs; stdout keeps the one result line.
 *
 * On a terminal: one line, redrawn in place at most every 100 ms, shown once the job has run
 * half a second, and cleared when it ends (so the result line stands alone). Elsewhere (a log, a
 * pipe): plain lines, the first once the job has run 2 s, then one every 5 s and one at each
 * change of phase (never two within a second), and a last `finished in …` line if any was
 * printed. A job done within those first seconds shows nothing at all.
 *
 * The rate is measured over the last 5 s of the current phase (a new phase starts it afresh); the
 * time left is shown when the phase has a total, the rate is known, and the total is not yet
 * passed (totals are estimates: a live filesystem grows while it is walked).
 *
 * REDISFS_PROGRESS=off shows nothing; =always shows progress from the start, however short the
 * job (plain mode: a line at each phase too); unset or =auto is the above.
 */

/** Where a job stands. */
export interface ProgressUpdate {
  /** What the job does now, as the user reads it (`copying`, `pass 2, metadata`). A new phase restarts the rate. */
  phase: string;
  /** Units done so far in this phase. */
  done: number;
  /** Units the phase has in all, an estimate; undefined when unknown (then no percentage and no time left). */
  total?: number | undefined;
  /** What is counted, plural (`inodes`, `blocks`). */
  unit: string;
}

/** A job's progress display. */
export interface Progress {
  /** Tells where the job stands; shown or not, as the mode and the throttling decide. */
  update(update: ProgressUpdate): void;
  /** The job succeeded: clears the terminal line; in plain mode, a last line if any was printed. */
  finish(): void;
  /** The job failed: clears the terminal line, nothing more (the error line follows). */
  abort(): void;
}

/** How a progress display writes, and its timing (defaults as in the module comment). */
export interface ProgressOptions {
  /** Writes text as is (no newline added): stderr. */
  write(text: string): void;
  /** Redraw one line in place (a terminal), else print plain lines. */
  terminal: boolean;
  /** The terminal's width: a longer line is cut, since a wrapped line cannot be redrawn in place. */
  columns?: (() => number | undefined) | undefined;
  /** The clock, in ms (tests inject one). */
  now?: (() => number) | undefined;
  /** Nothing is shown before the job has run this long: 500 ms on a terminal, 2 000 ms else. */
  quietMs?: number | undefined;
  /** Terminal: least time between redraws; default 100 ms. */
  redrawMs?: number | undefined;
  /** Plain: a line at least this often while updates come; default 5 000 ms. */
  everyMs?: number | undefined;
  /** Plain: a phase change gets its line once this long has passed since the last line; default 1 000 ms. */
  phaseGapMs?: number | undefined;
}

/** The variable that turns progress off, or on from the start (see the module comment). */
export const PROGRESS_ENV = 'REDISFS_PROGRESS';

/** The rate is measured over this much of the recent past. */
const RATE_WINDOW_MS = 5000;
/** Samples closer than this are merged (bounds memory: a job may report thousands of batches a second). */
const SAMPLE_MS = 100;
/** A rate measured over less time than this is noise: not shown. */
const MIN_RATE_SPAN_MS = 200;

const CLEAR_LINE = '\r\x1b[K';

interface Sample {
  t: number;
  done: number;
}

/**
 * A progress display for one job. `label` starts every line: the program and what it works on
 * (`redisfs-snapshot: snapshot of 'skx' as 'skx@mon'`).
 */
export function createProgress(label: string, options: ProgressOptions): Progress {
  const now = options.now ?? (() => Date.now());
  const terminal = options.terminal;
  const quietMs = options.quietMs ?? (terminal ? 500 : 2000);
  const redrawMs = options.redrawMs ?? 100;
  const everyMs = options.everyMs ?? 5000;
  const phaseGapMs = options.phaseGapMs ?? 1000;
  const start = now();
  let current: ProgressUpdate | undefined;
  let samples: Sample[] = [];
  let lastUpdateAt = start;
  let lastShownAt = -Infinity;
  let shown = false; // terminal: a line is on screen
  let printed = 0; // plain: lines printed
  let phaseUnprinted = false;
  let closed = false;

  const show = (t: number) => {
    const u = current!;
    const line = `${label}: ${describe(u, rateOf(samples), t - start, !terminal)}`;
    lastShownAt = t;
    if (terminal) {
      const width = options.columns?.();
      options.write(CLEAR_LINE + (width !== undefined && width > 1 ? line.slice(0, width - 1) : line));
      shown = true;
    } else {
      options.write(`${line}\n`);
      printed++;
      phaseUnprinted = false;
    }
  };

  return {
    update(update) {
      if (closed) return;
      const t = now();
      if (current === undefined || update.phase !== current.phase) {
        // A phase told at its start (done 0) begins now; else when the previous one last reported.
        samples = [{ t: update.done === 0 ? t : lastUpdateAt, done: 0 }];
        phaseUnprinted = true;
      }
      addSample(samples, { t, done: update.done });
      current = { ...update };
      lastUpdateAt = t;
      if (t - start < quietMs) return;
      if (terminal) {
        if (!shown || t - lastShownAt >= redrawMs) show(t);
        return;
      }
      const sinceLine = t - lastShownAt;
      if (printed === 0 || sinceLine >= everyMs || (phaseUnprinted && sinceLine >= phaseGapMs)) show(t);
    },
    finish() {
      if (closed) return;
      closed = true;
      if (terminal) {
        if (shown) options.write(CLEAR_LINE);
      } else if (printed > 0) {
        options.write(`${label}: finished in ${formatElapsed(now() - start)}\n`);
      }
    },
    abort() {
      if (closed) return;
      closed = true;
      if (terminal && shown) options.write(CLEAR_LINE);
    },
  };
}

/**
 * A progress display on this process's stderr: a terminal line when stderr is a terminal, plain
 * lines otherwise, as {@link PROGRESS_ENV} says. `scrub` cleans each text before it is written.
 */
export function stderrProgress(
  label: string,
  scrub: (text: string) => string = (text) => text,
  env: NodeJS.ProcessEnv = process.env,
): Progress {
  const mode = env[PROGRESS_ENV];
  if (mode === 'off') return { update: () => undefined, finish: () => undefined, abort: () => undefined };
  const stream = process.stderr;
  return createProgress(label, {
    write: (text) => stream.write(scrub(text)),
    terminal: stream.isTTY === true,
    columns: () => stream.columns,
    ...(mode === 'always' ? { quietMs: 0, phaseGapMs: 0 } : {}),
  });
}

/** Adds a sample, merging it into the last one when they are close, and drops those past the window. */
function addSample(samples: Sample[], sample: Sample): void {
  const n = samples.length;
  if (n >= 2 && sample.t - samples[n - 2]!.t < SAMPLE_MS) samples[n - 1] = sample;
  else samples.push(sample);
  // Keep the newest sample older than the window: the rate then spans the whole window.
  while (samples.length > 2 && sample.t - samples[1]!.t >= RATE_WINDOW_MS) samples.shift();
}

/** Units a second over the samples; undefined until they span enough time. */
export function rateOf(samples: readonly Sample[]): number | undefined {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.t - first.t < MIN_RATE_SPAN_MS) return undefined;
  return Math.max(0, ((last.done - first.done) * 1000) / (last.t - first.t));
}

/** `copying: 1200/5000 inodes (24%), 850 inodes/s, 5 s left` (plain lines add the time elapsed). */
function describe(u: ProgressUpdate, rate: number | undefined, elapsedMs: number, withElapsed: boolean): string {
  const total = u.total !== undefined && u.total > 0 && u.done <= u.total ? u.total : undefined;
  const parts = [
    total === undefined
      ? `${u.phase}: ${u.done} ${u.unit}`
      : `${u.phase}: ${u.done}/${total} ${u.unit} (${Math.floor((u.done * 100) / total)}%)`,
  ];
  if (rate !== undefined) parts.push(`${formatRate(rate)} ${u.unit}/s`);
  if (total !== undefined && rate !== undefined && rate > 0) parts.push(`${formatDuration((total - u.done) / rate)} left`);
  if (withElapsed) parts.push(`${formatElapsed(elapsedMs)} elapsed`);
  return parts.join(', ');
}

/** 850, 12, 2.5, 0.3: whole numbers from 10 up. */
export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

/** Time since the start: `0.4 s`, `9.9 s`, then as {@link formatDuration} (to the nearest second). */
export function formatElapsed(ms: number): string {
  return ms < 9950 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s` : formatDuration(Math.round(ms / 1000));
}

/** Time left: `0 s`, `42 s`, `3 min 05 s`, `2 h 07 min` (rounded up to the second). */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
