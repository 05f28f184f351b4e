/** Polling with a deadline: the one way this app waits for outside state (never a bare sleep). */

/** Thrown by {@link waitFor} when the deadline passes. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
}

export interface WaitOptions {
  /** Give up after this many ms. */
  timeoutMs: number;
  /** Time between probes, in ms; default 50. */
  intervalMs?: number;
  /** What is awaited, for the timeout message ("redis-server to answer"). */
  what: string;
  /** Injectable clock for tests. */
  now?: () => number;
}

/**
 * Calls `probe` until it returns something other than undefined/false, and returns that.
 * A probe that throws ends the wait with its error. Rejects with WaitTimeoutError at the deadline.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions,
): Promise<T> {
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (now() >= deadline) {
      throw new WaitTimeoutError(`timed out after ${options.timeoutMs} ms waiting for ${options.what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}
