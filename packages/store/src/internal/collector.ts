/**
 * The collector: background work that deletes what nothing references any more, in bounded
 * batches, so that an unlink, a truncate or a snapshot delete costs one short script whatever
 * the file or filesystem held:
 *  - `MP gc`: inodes whose block map has entries to release (a freed file, a shrink): one batch
 *    of RELEASE_BATCH entries per script (lua.ts, gcStep);
 *  - `{F}#dead`: deleted members of the family whose keys are still being released (a deleted
 *    snapshot), one key or one batch of a block map per script;
 *  - `{F}#free`: ids of blocks no map references: their keys are deleted, then the ids;
 *  - `MP orph`: inodes removed while open that no session holds any more (a session's end cut
 *    short, or a copy), freed one short script per few (lua-sessions.ts, sweepOrphans).
 * All of it is recorded in Redis by the script that made the work, so collection resumes where
 * it stopped, on this mount, another one, or the next. It never delays an open and stops within
 * one batch on close.
 */
import type { StoreContext } from './context.js';
import { deleteFreeBlocks, releaseGcWork, releaseMember, sweepOrphans } from './release.js';

/** Dead members looked at per round. */
const MEMBERS_PER_ROUND = 16;
/** How long after the first ask a round starts. */
const KICK_DELAY_MS = 20;

export class Collector {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: StoreContext,
    /** How often to look for work other mounts left (a crashed one, say). */
    private readonly pollMs = 30_000,
  ) {}

  /** Starts collecting now and every pollMs, in the background. */
  start(): void {
    this.kick();
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
  }

  /**
   * Asks for a round soon (after an operation left work). Never waits. Rounds start a few ms
   * after the first ask, so that a burst of unlinks (rm -rf) is collected in full batches rather
   * than a round per file.
   */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.round();
    }, KICK_DELAY_MS);
  }

  private pending: NodeJS.Timeout | undefined;

  private round(): void {
    if (this.stopped || this.running) return;
    this.running = this.loop()
      .catch((err: unknown) => {
        if (!this.stopped) this.ctx.warn('background collection of unreferenced blocks (it resumes later)', err);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.round();
        }
      });
  }

  /** Resolves when the current round (if any) and every round asked for meanwhile are done. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.pending) {
        clearTimeout(this.pending);
        this.pending = undefined;
        this.round();
      }
      if (!this.running) return;
      await this.running;
    }
  }

  /** Stops: the batch in progress finishes, nothing else starts. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.pending);
    this.pending = undefined;
    await this.running;
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.again = false;
      const did = (await this.orphans()) + (await this.maps()) + (await this.deadMembers()) + (await this.blocks());
      if (did === 0 || this.stopped) return;
    }
  }

  private async orphans(): Promise<number> {
    const { client, keys, scripts } = this.ctx;
    return (await sweepOrphans(client, scripts, keys, () => this.stopped)).freed;
  }

  private async maps(): Promise<number> {
    const { client, keys, scripts, blockSize } = this.ctx;
    return releaseGcWork(client, scripts, keys, blockSize, () => this.stopped);
  }

  private async deadMembers(): Promise<number> {
    const { client, keys, scripts } = this.ctx;
    const members = await client.sRandMemberCount(keys.deadMembers, MEMBERS_PER_ROUND);
    let did = 0;
    for (const prefix of members) {
      if (this.stopped) break;
      did += 1 + (await releaseMember(client, scripts, keys, prefix, () => this.stopped)).steps;
    }
    return did;
  }

  private async blocks(): Promise<number> {
    let did = 0;
    while (!this.stopped) {
      const n = await deleteFreeBlocks(this.ctx.client, this.ctx.keys);
      if (n === 0) break;
      did += n;
    }
    return did;
  }
}
