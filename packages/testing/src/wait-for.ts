/**
 * Polling with a deadline: the only way e2e tests wait for state (never a bare sleep).
 * Modelled on testcontainers' `IntervalRetry.retryUntil`, with the same injectable clock so the
 * timing logic itself can be tested without waiting.
 */

/** A source of "now" in milliseconds; inject a fake one to test deadlines. */
export interface Clock {
  getTime(): number;
}

/** The wall clock. */
export const SYSTEM_CLOCK: Clock = { getTime: () => Date.now() };

export interface WaitForOptions {
  /** Give up after this long (measured with `clock`). */
  timeoutMs: number;
  /** Pause between attempts; 50 ms unless told. */
  intervalMs?: number;
  /** What is awaited, for the timeout message ("redis-server on port 1234 to answer PING"). */
  what: string;
  /** Checked before every attempt: an Error returned here ends the wait at once with it. */
  bail?: () => Error | undefined;
  clock?: Clock;
  /** How to pause between attempts; a real timer unless told. */
  pause?: (ms: number) => Promise<void>;
}

/** Thrown when the deadline passes; `cause` is the last error the probe threw, if any. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** The truthy result of a probe. */
export type Settled<T> = Exclude<T, false | null | undefined | 0 | ''>;

const realPause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Calls `probe` every `intervalMs` until it returns a truthy value, and resolves with that value.
 * A probe that throws counts as "not yet" (its error becomes the timeout's cause). The probe runs
 * at least once; no pause ever reaches past the deadline.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, options: WaitForOptions): Promise<Settled<T>> {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const pause = options.pause ?? realPause;
  const intervalMs = options.intervalMs ?? 50;
  const start = clock.getTime();
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    const bailError = options.bail?.();
    if (bailError) throw bailError;
    attempts++;
    try {
      const result = await probe();
      if (result) return result as Settled<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const elapsed = clock.getTime() - start;
    if (elapsed >= options.timeoutMs) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new WaitTimeoutError(
        `timed out after ${options.timeoutMs} ms (${attempts} attempts) waiting for ${options.what}${detail}`,
        lastError === undefined ? undefined : { cause: lastError },
      );
    }
    await pause(Math.min(intervalMs, options.timeoutMs - elapsed));
  }
}

/**
 * Waits until `problem` finds nothing wrong (resolves undefined); each problem it names counts as
 * "not yet" and the last one becomes the timeout's cause (a cluster or sentinel setup settling).
 */
export async function waitForNoProblem(problem: () => Promise<string | undefined>, options: WaitForOptions): Promise<void> {
  await waitFor(async () => {
    const why = await problem();
    if (why) throw new Error(why);
    return true;
  }, options);
}
