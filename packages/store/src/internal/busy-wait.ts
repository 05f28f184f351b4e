/**
 * A Redis that is loading its dataset (after a restart: `LOADING`) or running someone's slow
 * script (`BUSY`) refuses each command without running it. Both are moments to wait through,
 * not errors: a single-server client sends such a command again, with a growing pause, until it
 * runs or `maxWaitMs` has passed since it was first sent (the operation's own deadline, so that
 * a command never runs after its caller was told it failed). Cluster and Sentinel clients retry
 * these in topology.ts. The retry loop (`retrying`) also serves the store's operations sent again
 * after a dropped connection (inode-store.ts op).
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** A refusal that means "not now": the command did not run. */
export function isBusyRefusal(err: unknown): boolean {
  return err instanceof Error && /^(LOADING|BUSY)\b/.test(err.message);
}

interface Sender {
  _self?: Sender;
  sendCommand(args: ReadonlyArray<unknown>, options?: unknown): Promise<unknown>;
}

/**
 * Runs `fn` again, after a pause that doubles from `firstPauseMs` up to `longestPauseMs`, while it
 * fails with an error `retryIf` accepts and the next try would start before `giveUpAt` (ms since
 * the epoch); then its last error is thrown.
 */
export async function retrying<T>(
  fn: () => Promise<T>,
  retryIf: (err: unknown) => boolean,
  giveUpAt: number,
  firstPauseMs: number,
  longestPauseMs: number,
): Promise<T> {
  for (let pause = firstPauseMs; ; pause = Math.min(pause * 2, longestPauseMs)) {
    try {
      return await fn();
    } catch (err) {
      if (!retryIf(err) || Date.now() + pause >= giveUpAt) throw err;
      await sleep(pause);
    }
  }
}

const hooked = new WeakSet<object>();

/** Makes `client` (one server) wait through LOADING and BUSY refusals, once per client. */
export function waitThroughBusy(client: object, maxWaitMs: number): void {
  const c = client as Sender;
  const self = c._self ?? c;
  if (hooked.has(self)) return;
  hooked.add(self);
  const send = self.sendCommand;
  self.sendCommand = function (this: Sender, args, options) {
    return retrying(() => send.call(this, args, options), isBusyRefusal, Date.now() + maxWaitMs, 10, 250);
  };
}
