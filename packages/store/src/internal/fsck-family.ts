/**
 * fsck, judging the blocks of a whole family: every member of a family (a filesystem and its
 * snapshots and clones) shares one pool of data blocks, one reference count hash and one free
 * list, so whichever member is checked, these are checked for the family. No I/O here: the scan
 * feeds a {@link BlockTable} (fsck-scan.ts), and {@link FamilyCheck} turns it into findings.
 *
 * The rules (layout.ts): each entry of a block map holds one reference to its block; `{F}#rc`
 * holds the count of exactly the blocks with 2 or more references (absent = 1); an id no map
 * references is in `{F}#free` (the collector deletes its key, then the id), or its key is gone.
 */
import { keysFor, type KeyLayout } from '@redisfs/schema';
import type { FsckProblemKind } from '../fsck.js';
import type { Finding, RepairAction } from './fsck-check.js';

/** Flags of an id, kept below its reference count: value = references * FLAGS + flags. */
const STORED = 1;
const IN_RC = 2;
const IN_FREE = 4;
const FLAGS = 8;
/** A JS Map holds at most 2^24 entries: ids are spread over this many. */
const SHARDS = 64;

/**
 * Every block id the family's keys mention (a stored block, a map entry, an rc field, a free
 * id), with its reference count and where it was seen: one number per id, so that memory stays
 * proportional to the blocks stored.
 */
export class BlockTable {
  private readonly shards = Array.from({ length: SHARDS }, () => new Map<string, number>());

  /** A block key of this id exists. */
  stored(id: string): void {
    this.flag(id, STORED);
  }

  /** A map entry references this id. */
  reference(id: string): void {
    const shard = this.shardOf(id);
    shard.set(id, (shard.get(id) ?? 0) + FLAGS);
  }

  isStored(id: string): boolean {
    return ((this.shardOf(id).get(id) ?? 0) & STORED) !== 0;
  }

  references(id: string): number {
    return Math.floor((this.shardOf(id).get(id) ?? 0) / FLAGS);
  }

  /** Sets a flag; false when it was set already (a SCAN family command repeated the element). */
  flag(id: string, flag: typeof STORED | typeof IN_RC | typeof IN_FREE): boolean {
    const shard = this.shardOf(id);
    const v = shard.get(id) ?? 0;
    if ((v & flag) !== 0) return false;
    shard.set(id, v + flag);
    return true;
  }

  *entries(): Generator<{ id: string; references: number; stored: boolean; inRc: boolean; inFree: boolean }> {
    for (const shard of this.shards) {
      for (const [id, v] of shard) {
        yield { id, references: Math.floor(v / FLAGS), stored: (v & STORED) !== 0, inRc: (v & IN_RC) !== 0, inFree: (v & IN_FREE) !== 0 };
      }
    }
  }

  private shardOf(id: string): Map<string, number> {
    let h = 0;
    for (let i = Math.max(0, id.length - 6); i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
    return this.shards[h % SHARDS]!;
  }
}

/** Judges the family's reference counts, free list and stored blocks against the references counted. */
export class FamilyCheck {
  private readonly found: Finding[] = [];
  private freeIds = 0;

  constructor(
    private readonly layout: KeyLayout,
    private readonly table: BlockTable,
    /** Members of the family that hold block maps (whose maps may reference a block). */
    private readonly members: ReadonlySet<string>,
  ) {}

  /** One field of `{F}#rc` (HSCAN order). */
  refcount(id: string, raw: string): void {
    if (!this.table.flag(id, IN_RC)) return;
    const refs = this.table.references(id);
    if (refs >= 2 && raw === String(refs)) return;
    const where = `block ${id}: ${this.layout.refcounts} says ${JSON.stringify(raw)}`;
    if (refs === 0) {
      this.add(
        'refcount-wrong',
        `${where}, but no block map references it (its block is handed to the collector)`,
        { op: 'set-refcount', id, from: raw, to: 0 },
        this.layout.refcounts,
      );
    } else {
      const want = refs === 1 ? '1 (no field: only shared blocks are counted)' : String(refs);
      this.add('refcount-wrong', `${where}, but ${refs} map entr${refs === 1 ? 'y references' : 'ies reference'} it: should be ${want}`, {
        op: 'set-refcount',
        id,
        from: raw,
        to: refs,
      }, this.layout.refcounts);
    }
  }

  /** One member of `{F}#free` (SSCAN order). */
  free(id: string): void {
    if (!this.table.flag(id, IN_FREE)) return;
    this.freeIds++;
    const refs = this.table.references(id);
    if (refs === 0) return;
    this.add(
      'block-freed-in-use',
      `block ${id} is listed in ${this.layout.freeBlocks} (to be deleted) but ${refs} map entr${refs === 1 ? 'y references' : 'ies reference'} it`,
      { op: 'unfree-block', id },
      this.layout.freeBlocks,
    );
  }

  /** Distinct ids seen in `{F}#free`. */
  get freeBlocks(): number {
    return this.freeIds;
  }

  /** Every finding, once the table, the rc hash and the free list were all read. */
  findings(): Finding[] {
    const out = [...this.found];
    for (const e of this.table.entries()) {
      if (e.references >= 2 && !e.inRc) {
        out.push(
          finding('refcount-wrong', `block ${e.id}: ${e.references} map entries reference it, but ${this.layout.refcounts} has no count for it (1)`, {
            op: 'set-refcount',
            id: e.id,
            from: '',
            to: e.references,
          }, this.layout.refcounts),
        );
      } else if (e.stored && e.references === 0 && !e.inFree && !e.inRc) {
        out.push(
          finding(
            'block-unreferenced',
            `block ${this.layout.block(e.id)}: no block map of any member of the family references it, and it is not in ${this.layout.freeBlocks} (left by a write cut short?)`,
            { op: 'delete-block', id: e.id, maps: this.holders(e.id) },
            this.layout.block(e.id),
          ),
        );
      }
    }
    return out;
  }

  /**
   * The map keys that could reference `id` (the repair re-checks them): for an id kept from
   * layout 1 (`<ino>:<index>`), that inode's map in every member; a counter id may be in any map.
   */
  private holders(id: string): string[] {
    const colon = id.indexOf(':');
    if (colon < 0) return [];
    const ino = Number(id.slice(0, colon));
    return [...this.members].map((prefix) => keysFor(prefix).map(ino));
  }

  private add(kind: FsckProblemKind, message: string, action: RepairAction, key: string): void {
    this.found.push(finding(kind, message, action, key));
  }
}

function finding(kind: FsckProblemKind, message: string, action: RepairAction, key: string): Finding {
  return { problem: { kind, message, key, repairable: true }, action };
}

