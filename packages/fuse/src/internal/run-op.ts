/**
 * The wrapper every FUSE handler goes through: run the async operation, turn its failure into a
 * negative errno (toErrno), log what was not expected, and answer the kernel EXACTLY once. A lost
 * answer would hang the calling process (fuse-native runs with timeout: false), so a watchdog
 * answers EIO when an operation never settles; a late result is then dropped.
 */
import { constants } from 'node:os';
import { toErrno } from './errno.js';

/** Logging and safety settings shared by every operation of a mount. */
export interface OpEnv {
  /** Log one line per operation (name, argument, result, duration). */
  debug: boolean;
  log: (line: string) => void;
  /** Answer EIO if an operation has not settled after this many ms (0 = never). */
  watchdogMs: number;
  /** Where the operations run are counted (MountedFs.stats). */
  counts?: OpCounts;
}

/** FUSE calls served, by operation name: one Map increment per call. */
export class OpCounts {
  private readonly counts = new Map<string, number>();

  add(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  /** A copy of the counts so far, largest first. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
  }
}

/** What a log line says about an operation's arguments; a function is only called when logging. */
export type Detail = string | (() => string);

function labelOf(name: string, detail: Detail): string {
  try {
    const text = typeof detail === 'function' ? detail() : detail;
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

/**
 * Runs `fn` (called synchronously, so it may read per-request context before its first await)
 * and answers with `reply` exactly once, however `fn` ends: value, rejection or synchronous throw.
 */
export function runOp<T>(env: OpEnv, name: string, detail: Detail, fn: () => Promise<T> | T, reply: Reply<T>): void {
  env.counts?.add(name);
  const started = performance.now();
  let labelText: string | undefined;
  // Built only when a line is logged; a failure to build it must not cost the answer.
  const label = (): string => (labelText ??= labelOf(name, detail));
  let answered = false;
  let watchdog: NodeJS.Timeout | undefined;

  const answer = (errno: number, value?: T): void => {
    if (answered) {
      if (env.debug) env.log(`${label()}: late ${errnoName(errno)} after the watchdog answered; dropped`);
      return;
    }
    answered = true;
    if (watchdog) clearTimeout(watchdog);
    if (env.debug) env.log(`${label()} -> ${errnoName(errno)} (${(performance.now() - started).toFixed(1)} ms)`);
    try {
      if (errno === 0) reply(0, value);
      else reply(errno);
    } catch (err) {
      env.log(`${label()}: answering FUSE failed: ${describeError(err)}`);
      // The reply threw before reaching fuse-native (which only queues the answer): answer EIO.
      if (errno === 0) {
        try {
          reply(-constants.errno.EIO);
        } catch (again) {
          env.log(`${label()}: answering EIO failed too: ${describeError(again)}`);
        }
      }
    }
  };
  const fail = (err: unknown): void => {
    answer(toErrno(err, (e) => env.log(`${label()}: unexpected error, answering EIO: ${describeError(e)}`)));
  };

  if (env.watchdogMs > 0) {
    watchdog = setTimeout(() => {
      env.log(`${label()}: no result after ${env.watchdogMs} ms, answering EIO`);
      answer(-constants.errno.EIO);
    }, env.watchdogMs);
    watchdog.unref();
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
