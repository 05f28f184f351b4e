/**
 * The wrapper every FUSE handler goes through: run the async operation, turn its failure into a
 * negative errno (toErrno), log what was not expected, and answer the kernel EXACTLY once. Each
 * call has one deadline, whatever it does inside (several store operations, a flush of its
 * buffered writes): when it passes, the call is answered ETIMEDOUT and a late result is dropped
 * (a store operation may still take effect in Redis). The deadline is the store's operation
 * timeout, so a call never waits twice that long; without one (a hard mount), a call waits for
 * Redis as long as it takes.
 */
import { constants } from 'node:os';
import { displayPath } from './byte-names.js';
import { isExpectedError, toErrno } from './errno.js';

/**
 * How bad a log line is. error: a request answered EIO for a reason not foreseen (a bug, a lost
 * answer) or written data lost; warn: the store failed (Redis unreachable, a corrupt record);
 * info: the mount's life; debug: every operation. Routine answers (ENOENT, EEXIST, EACCES…)
 * only show in debug's per-operation lines.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
/** Takes one log line; the caller decides what each level is worth (the adapter has no policy). */
export type LogFn = (line: string, level: LogLevel) => void;

/** Errors that say the storage failed, not the request: worth a warning with the operation and path. */
const STORE_FAILURES: ReadonlySet<string> = new Set(['EIO', 'ETIMEDOUT']);

/** Logging and safety settings shared by every operation of a mount. */
export interface OpEnv {
  /** Log one line per operation (name, argument, result, duration). */
  debug: boolean;
  /** Where log lines go, each with its level (see LogLevel). */
  log: LogFn;
  /** The deadline of one call: answer ETIMEDOUT if it has not settled after this many ms (0 = none). */
  deadlineMs: number;
  /** Where the operations run are counted (MountedFs.stats). */
  counts?: OpCounts;
  /** Told of every answered operation (MountFsOptions.onOperation). */
  onOperation?: OperationObserver;
}

/**
 * Told of every operation once answered: its name, how long it took to answer in seconds, and
 * the errno name it failed with ("ENOENT"; undefined on success). Called on the answering path:
 * it must be cheap, and what it throws is ignored.
 */
export type OperationObserver = (op: string, seconds: number, errno: string | undefined) => void;

/** Lookups a cache answered (hits) and those it could not (misses). */
export interface CacheCounts {
  hits: number;
  misses: number;
}

/**
 * What a mount has served: FUSE calls by operation name (one Map increment per call), calls
 * answered with an error by operation and errno, bytes read and written, and the hits and misses
 * of the attribute cache and of read-ahead (counted where they are consulted).
 */
export class OpCounts {
  private readonly counts = new Map<string, number>();
  private readonly errors = new Map<string, Map<string, number>>();
  /** Bytes answered to reads. */
  bytesRead = 0;
  /** Bytes accepted from writes (buffered or stored). */
  bytesWritten = 0;
  readonly attrCache: CacheCounts = { hits: 0, misses: 0 };
  readonly readAhead: CacheCounts = { hits: 0, misses: 0 };

  add(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  /**
   * Counts how operation `name` was answered: an error by its errno, the bytes of a read's data
   * or a write's count.
   */
  answered(name: string, errno: number, value: unknown): void {
    if (errno !== 0) {
      let byErrno = this.errors.get(name);
      if (!byErrno) this.errors.set(name, (byErrno = new Map()));
      const key = errnoName(errno);
      byErrno.set(key, (byErrno.get(key) ?? 0) + 1);
    } else if (name === 'read' && Buffer.isBuffer(value)) {
      this.bytesRead += value.length;
    } else if (name === 'write' && typeof value === 'number') {
      this.bytesWritten += value;
    }
  }

  /** A copy of the counts so far, largest first. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
  }

  /** A copy of the errors so far, by operation, then by errno name ({ lookup: { ENOENT: 2 } }). */
  errorSnapshot(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.errors].map(([name, byErrno]) => [name, Object.fromEntries(byErrno)]));
  }
}

/** Counts an answered operation and tells the observer; neither may cost the answer. */
function observe(env: OpEnv, name: string, errno: number, value: unknown, started: number): void {
  env.counts?.answered(name, errno, value);
  if (!env.onOperation) return;
  try {
    env.onOperation(name, (performance.now() - started) / 1000, errno === 0 ? undefined : errnoName(errno));
  } catch {
    // Metrics are never worth a lost answer (see the module comment).
  }
}

/** What a log line says about an operation's arguments; a function is only called when logging. */
export type Detail = string | (() => string);

function labelOf(name: string, detail: Detail): string {
  try {
    // Paths in a detail are the binding's byte strings: shown decoded as UTF-8 (lossy).
    const text = displayPath(typeof detail === 'function' ? detail() : detail);
    return text ? `${name} ${text}` : name;
  } catch {
    return name;
  }
}

/** Answers one operation: errno 0 with a value on success, a negative errno on failure. */
export type Reply<T> = (errno: number, value?: T) => void;

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

function errnoName(errno: number): string {
  return errno === 0 ? 'ok' : (ERRNO_NAMES.get(-errno) ?? String(errno));
}

/** A log-friendly description of a thrown value, with its cause chain. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.stack ?? `${err.name}: ${err.message}`;
  if (err.cause !== undefined) text += `\n  caused by: ${describeError(err.cause)}`;
  return text;
}

/** How one call runs. */
export interface RunOptions {
  /**
   * false: no deadline for this call (a lock request that waits for another owner, F_SETLKW or
   * a blocking flock, waits as long as it takes, as on a local disk; the caller can interrupt it).
   */
  deadline?: boolean;
}

/**
 * Runs `fn` (called synchronously, so it may read per-request context before its first await)
 * and answers with `reply` exactly once, however `fn` ends: value, rejection or synchronous throw.
 */
export function runOp<T>(env: OpEnv, name: string, detail: Detail, fn: () => Promise<T> | T, reply: Reply<T>, options: RunOptions = {}): void {
  env.counts?.add(name);
  const started = performance.now();
  let labelText: string | undefined;
  // Built only when a line is logged; a failure to build it must not cost the answer.
  const label = (): string => (labelText ??= labelOf(name, detail));
  let answered = false;
  let deadline: NodeJS.Timeout | undefined;

  const answer = (errno: number, value?: T): void => {
    if (answered) {
      if (env.debug) env.log(`${label()}: late ${errnoName(errno)} after its deadline; dropped`, 'debug');
      return;
    }
    answered = true;
    if (deadline) clearTimeout(deadline);
    observe(env, name, errno, value, started);
    if (env.debug) env.log(`${label()} -> ${errnoName(errno)} (${(performance.now() - started).toFixed(1)} ms)`, 'debug');
    try {
      if (errno === 0) reply(0, value);
      else reply(errno);
    } catch (err) {
      env.log(`${label()}: answering FUSE failed: ${describeError(err)}`, 'error');
      // The reply threw before reaching fuse-native (which only queues the answer): answer EIO.
      if (errno === 0) {
        try {
          reply(-constants.errno.EIO);
        } catch (again) {
          env.log(`${label()}: answering EIO failed too: ${describeError(again)}`, 'error');
        }
      }
    }
  };
  const fail = (err: unknown): void => {
    const errno = toErrno(err, (e) => env.log(`${label()}: unexpected error, answering EIO: ${describeError(e)}`, 'error'));
    if (err instanceof Error && isExpectedError(err) && STORE_FAILURES.has(err.code)) env.log(`${label()}: ${err.message}`, 'warn');
    answer(errno);
  };

  if (env.deadlineMs > 0 && options.deadline !== false) {
    deadline = setTimeout(() => {
      env.log(`${label()}: no answer from Redis within the deadline (${env.deadlineMs} ms), answering ETIMEDOUT`, 'warn');
      answer(-constants.errno.ETIMEDOUT);
    }, env.deadlineMs);
    deadline.unref();
  }

  let result: Promise<T>;
  try {
    result = Promise.resolve(fn());
  } catch (err) {
    fail(err);
    return;
  }
  result.then((value) => answer(0, value), fail);
}

/** Reply for callbacks that take only an error: cb(0) or cb(-errno). */
export function voidReply(cb: (err: number) => void): Reply<unknown> {
  return (errno) => cb(errno);
}

/** Reply for callbacks that take an error then a value: cb(0, value) or cb(-errno). */
export function valueReply<T>(cb: (err: number, value?: T) => void): Reply<T> {
  return (errno, value) => (errno === 0 ? cb(0, value) : cb(errno));
}
