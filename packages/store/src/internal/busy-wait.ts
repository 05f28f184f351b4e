/**
 * A Redis that is loading its dataset (after a restart: `LOADING`) or running someone's slow
 * script (`BUSY`) refuses each command without running it. Both are moments to wait through,
 * not errors: a single-server client sends such a command again, with a growing pause, until it
 * runs or `maxWaitMs` has passed since it was first sent (the operation's own deadline, so that
 * a command never runs after its caller was told it failed). Cluster and Sentinel clients retry
 * these in topology.ts.
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

const FIRST_PAUSE_MS = 10;
const LONGEST_PAUSE_MS = 250;

const hooked = new WeakSet<object>();

/** Makes `client` (one server) wait through LOADING and BUSY refusals, once per client. */
export function waitThroughBusy(client: object, maxWaitMs: number): void {
  const c = client as Sender;
  const self = c._self ?? c;
  if (hooked.has(self)) return;
  hooked.add(self);
  const send = self.sendCommand;
  self.sendCommand = async function (this: Sender, args, options) {
    const giveUpAt = Date.now() + maxWaitMs;
    for (let pause = FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, LONGEST_PAUSE_MS)) {
      try {
        return await send.call(this, args, options);
      } catch (err) {
        if (!isBusyRefusal(err) || Date.now() + pause >= giveUpAt) throw err;
        await sleep(pause);
      }
    }
  };
}
