/**
 * fsck, judging one filesystem: turns the image the scan read, and the entries of its block
 * maps, into findings, each a problem and (when fsck knows a safe fix) the repair action for it.
 * No I/O here. (What the members of a family share, their blocks: fsck-family.ts.)
 *
 * Reachability decides what is live: a breadth-first walk from the root over the entries of
 * live directories. A directory's one true name is the entry through which the walk reached it
 * (a spanning tree, so keeping exactly those names never disconnects anything); the walk takes
 * a name in the directory the child's `p` records before any other, so the name rename(2) last
 * gave it wins. Other names of it are extra. A non-directory is live when a reachable directory names it.
 * Link counts only count entries of reachable directories: what will remain once orphans go.
 */
import {
  FILE_TYPE_CODES,
  ROOT_INO,
  encodeDirEntry,
  superblockSchema,
  type FileType,
  type KeyLayout,
} from '@redisfs/schema';
import type { FsckCounts, FsckProblem, FsckProblemKind } from '../fsck.js';
import type { InodeImage, MetaImage } from './fsck-scan.js';
import { fromByteKey, showName } from './names.js';

/**
 * A change that fixes one problem; each is applied atomically by fsck-repair.ts. An entry's
 * `name` is its exact bytes (a string: its UTF-8 bytes) and `value` what it held, one char per
 * byte (latin1).
 */
export type RepairAction =
  | { op: 'remove-entry'; dir: number; name: Buffer | string; value: string }
  | { op: 'set-entry'; dir: number; name: Buffer | string; value: string; newValue: string }
  | { op: 'set-nlink'; ino: number; from: string; to: number }
  | { op: 'set-parent'; ino: number; from: string; to: number }
  /** Deletes an orphan inode; its block map (`blocks` entries) is released. */
  | { op: 'delete-inode'; ino: number; nlink: string; ctime: string; blocks: number }
  /** Deletes an entries hash, an xattr hash or a symlink target key whose inode is gone (or of another type). */
  | { op: 'delete-hash'; which: 'dir' | 'xattr' | 'target'; ino: number }
  /** Releases a block map's entries: all of them (`whole`: its inode is gone or not a file), or those past the file's end. */
  | { op: 'release-map'; ino: number; whole: boolean }
  /** Removes one map entry (its block is missing, or the entry is corrupt), releasing its reference. */
  | { op: 'remove-map-entry'; ino: number; id: string; index: number; missing: boolean }
  /** Sets (to >= 2), removes (to 1) or removes and frees (to 0) a block's reference count. */
  | { op: 'set-refcount'; id: string; from: string; to: number }
  /** Deletes a stored block nothing references (`maps`: the keys that could, re-checked first). */
  | { op: 'delete-block'; id: string; maps: string[] }
  /** Takes a referenced block off the free list. */
  | { op: 'unfree-block'; id: string }
  | { op: 'create-root'; nlink: number }
  | { op: 'set-stats'; from: { inodes: string; bytes: string }; to: { inodes: number; bytes: string } }
  | { op: 'raise-counter'; to: number }
  | SessionRepairAction;

/** Repairs of sessions and what they hold (fsck-sessions.ts applies them). */
export type SessionRepairAction =
  /** Ends an expired session: its holds (freeing what only it held) and locks go, then its keys. */
  | { op: 'end-session'; sid: string }
  /** Frees an inode removed while open that no live session holds (if its nlink and ctime did not change). */
  | { op: 'free-removed'; ino: number; nlink: string; ctime: string }
  /** Drops holds of an inode that is gone (`what: 'inode'`; sid '' = every holder), or of a session that is not alive. */
  | { op: 'drop-hold'; ino: number; sid: string; what: 'inode' | 'session' }
  /** Takes an inode that is no kept-open file off `{P}:orph` (or frees it if it is an unheld one). */
  | { op: 'sweep-orphan'; ino: number }
  /** Drops the lock fields of sessions that are not alive on an inode. */
  | { op: 'drop-locks'; ino: number; sids: string[] }
  /** Unlinks a directory entry (as unlink(2) does), while it still holds `value`. */
  | { op: 'unlink-entry'; dir: number; name: Buffer | string; value: string };

/** A problem and, when fsck can fix it, how. */
export interface Finding {
  problem: FsckProblem;
  action?: RepairAction | undefined;
}

type Refs = Partial<Pick<FsckProblem, 'ino' | 'dir' | 'name' | 'nameBytes' | 'key'>>;

/** An entry naming an inode, in a reachable directory. */
interface EntryRef {
  dir: number;
  /** The name's bytes as a byteKey (see MetaImage.dirs). */
  name: string;
  value: string;
}

/** An entry's name for a message: readable, on one line (showName). */
export function shownEntry(key: string): string {
  return showName(fromByteKey(key));
}

/** The problem fields of an entry: its directory, its name readable and exact, its hash. */
export function entryRefs(layout: KeyLayout, dir: number, key: string): Refs {
  const bytes = fromByteKey(key);
  return { dir, name: showName(bytes), nameBytes: bytes, key: layout.dir(dir) };
}

/** The action that removes an entry while it still holds what it held. */
function removeEntry(ref: EntryRef): RepairAction {
  return { op: 'remove-entry', dir: ref.dir, name: fromByteKey(ref.name), value: ref.value };
}

const TYPE_OF_CODE = new Map<string, FileType>(Object.entries(FILE_TYPE_CODES).map(([t, c]) => [c, t as FileType]));

/** Checks a scanned image (its block maps: fsck-maps.ts, fed in afterwards). */
export function checkImage(image: MetaImage, layout: KeyLayout): ImageCheck {
  return new ImageCheck(image, layout);
}

export class ImageCheck {
  /** The superblock is missing or corrupt, or the root is not a directory: nothing else is checked. */
  readonly fatal: boolean;
  readonly blockSize: number;
  private readonly found: Finding[] = [];
  private readonly flaggedKeys = new Set<string>();
  private readonly orphans = new Map<number, InodeImage>();
  /** Unreachable non-directories with link count 0: removed while open (kept for their holders, or left behind). */
  private readonly removed = new Map<number, InodeImage>();
  private maxIno = ROOT_INO;

  constructor(
    private readonly image: MetaImage,
    private readonly layout: KeyLayout,
  ) {
    this.blockSize = this.checkSuperblock();
    this.fatal = this.blockSize === 0 || this.checkRootType();
    if (this.fatal) return;
    for (const [key, why] of image.unexpected) this.unexpected(key, why);
    for (const ino of [...image.inodes.keys(), ...image.dirs.keys(), ...image.xattrs, ...image.maps, ...image.targets]) this.maxIno = Math.max(this.maxIno, ino);
    this.checkTree();
    this.checkStrayHashes();
    this.checkTargets();
  }

  /** Records a key the layout does not define (never repaired: fsck does not know what it is). */
  unexpected(key: string, why: string): void {
    if (this.flaggedKeys.has(key)) return;
    this.flaggedKeys.add(key);
    this.found.push(finding('unexpected-key', `key ${key} ${why}`, { key }));
  }

  /** Live inodes not reachable from the root (found in the constructor), but removed files. */
  get orphanInodes(): ReadonlyMap<number, InodeImage> {
    return this.orphans;
  }

  /**
   * Files (non-directories) with link count 0 that no entry names: removed while a session held
   * them open (fsck-sessions.ts judges them against the sessions).
   */
  get removedInodes(): ReadonlyMap<number, InodeImage> {
    return this.removed;
  }

  /** Every finding; `mapEntries(ino)`: how many blocks the block map of `ino` holds. */
  findings(mapEntries: (ino: number) => number, mapFindings: readonly Finding[]): Finding[] {
    if (this.fatal) return this.found;
    const orphans = [...this.orphans.values()].map((node) =>
      finding(
        'orphan-inode',
        `inode ${node.ino} (${node.type}${node.type === 'file' ? `, ${node.size} bytes, ${mapEntries(node.ino)} block(s)` : ''}) is not reachable from the root: no entry of a reachable directory names it`,
        { ino: node.ino, key: this.layout.inodes(node.ino) },
        { op: 'delete-inode', ino: node.ino, nlink: node.rawNlink, ctime: node.rawCtime, blocks: mapEntries(node.ino) },
      ),
    );
    return [...this.found, ...orphans, ...mapFindings, ...this.totals()];
  }

  counts(blocks: { mapped: number; family: number }): FsckCounts {
    let directories = 0;
    let entries = 0;
    for (const node of this.image.inodes.values()) if (node.type === 'dir') directories++;
    for (const dir of this.image.dirs.values()) entries += dir.size;
    return { inodes: this.image.inodes.size, directories, entries, blocks: blocks.mapped, familyBlocks: blocks.family };
  }

  private add(kind: FsckProblemKind, message: string, refs: Refs, action?: RepairAction): void {
    this.found.push(finding(kind, message, refs, action));
  }

  /** Returns the block size, or 0 when the superblock is missing or corrupt (fatal). */
  private checkSuperblock(): number {
    const sb = this.image.superblock;
    const key = this.layout.superblock;
    if (sb === undefined) {
      this.add('superblock-missing', `no superblock ${key}, but the prefix holds other keys (a half-deleted or half-copied filesystem?)`, { key });
      return 0;
    }
    // (Its layout version was checked before the scan: fsck.ts.)
    const parsed = superblockSchema.safeParse(sb);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? '?')))].join(', ');
      this.add('superblock-corrupt', `superblock ${key} is corrupt (field ${fields})`, { key });
      return 0;
    }
    return parsed.data.bsize;
  }

  /** A root that is a file or symlink cannot be repaired safely: true (fatal). */
  private checkRootType(): boolean {
    const root = this.image.inodes.get(ROOT_INO);
    if (!root?.readable || root.type === 'dir') return false;
    this.add('root-missing', `inode ${ROOT_INO}, the root, is a ${root.type}, not a directory`, { ino: ROOT_INO, key: this.layout.inodes(ROOT_INO) });
    return true;
  }

  /** Walks the tree from the root, then judges every inode against what the walk saw. */
  private checkTree(): void {
    const { inodes, dirs } = this.image;
    const names = new Map<number, EntryRef[]>();
    const subdirs = new Map<number, number>();
    const treeParent = new Map<number, EntryRef>();
    const visited = new Set<number>([ROOT_INO]);
    const queue = [ROOT_INO];
    // Directories reached through a name their `p` disagrees with wait here: a name in the
    // directory `p` records, found later, is preferred.
    const detours: { ino: number; ref: EntryRef }[] = [];
    const visit = (ino: number, ref: EntryRef) => {
      visited.add(ino);
      treeParent.set(ino, ref);
      queue.push(ino);
    };
    for (let q = 0, d = 0; ; q++) {
      if (q === queue.length) {
        while (d < detours.length && visited.has(detours[d]!.ino)) d++;
        const detour = detours[d];
        if (!detour) break;
        visit(detour.ino, detour.ref);
      }
      const dir = queue[q]!;
      const entries = dirs.get(dir);
      if (!entries) continue;
      // Byte order (the keys hold one char per byte).
      for (const name of [...entries.keys()].sort()) {
        const ref: EntryRef = { dir, name, value: entries.get(name)! };
        const ino = entryIno(ref.value);
        const entry = () => `entry '${shownEntry(name)}' of directory ${dir}`; // only for a finding
        if (ino === undefined) {
          this.add('entry-corrupt', `${entry()} holds ${JSON.stringify(ref.value)}, not a type and an inode number`, entryRefs(this.layout, dir, name), removeEntry(ref));
          continue;
        }
        const target = inodes.get(ino);
        if (!target) {
          this.add('entry-dangling', `${entry()} names inode ${ino}, which does not exist`, { ino, ...entryRefs(this.layout, dir, name) }, removeEntry(ref));
          continue;
        }
        if (target.readable && target.type && ref.value.charAt(0) !== FILE_TYPE_CODES[target.type]) {
          const says = TYPE_OF_CODE.get(ref.value.charAt(0)) ?? `an unknown type '${ref.value.charAt(0)}'`;
          this.add(
            'entry-type-mismatch',
            `${entry()} says ${says}, but inode ${ino} is a ${target.type}`,
            { ino, ...entryRefs(this.layout, dir, name) },
            { op: 'set-entry', dir, name: fromByteKey(name), value: ref.value, newValue: encodeDirEntry(target.type, ino) },
          );
        }
        const named = names.get(ino);
        if (named) named.push(ref);
        else names.set(ino, [ref]);
        if (target.readable && target.type === 'dir') subdirs.set(dir, (subdirs.get(dir) ?? 0) + 1);
        // An unreadable inode with an entries hash may be a directory: walk it, so that its
        // children are not taken for orphans.
        const walk = target.readable ? target.type === 'dir' : dirs.has(ino);
        if (!walk || visited.has(ino)) continue;
        if (target.readable && target.rawParent === String(dir)) visit(ino, ref);
        else detours.push({ ino, ref });
      }
    }
    this.checkRoot(names.get(ROOT_INO) ?? [], subdirs.get(ROOT_INO) ?? 0);
    for (const ino of [...inodes.keys()].sort((a, b) => a - b)) {
      const node = inodes.get(ino)!;
      if (!node.readable) {
        this.add('inode-unreadable', `inode ${ino} cannot be read: ${node.reason}`, { ino, key: this.layout.inodes(ino) });
        continue;
      }
      if (ino === ROOT_INO) continue;
      const refs = names.get(ino) ?? [];
      const reachable = node.type === 'dir' ? visited.has(ino) : refs.length > 0;
      if (!reachable) {
        if (node.type !== 'dir' && node.rawNlink === '0') this.removed.set(ino, node);
        else this.orphans.set(ino, node);
        continue;
      }
      let expected = refs.length;
      let why = `${refs.length} entr${refs.length === 1 ? 'y names' : 'ies name'} it`;
      if (node.type === 'dir') {
        const kept = treeParent.get(ino)!;
        for (const ref of refs.filter((r) => r !== kept)) {
          this.add(
            'dir-multiple-names',
            `directory ${ino} is also named '${shownEntry(ref.name)}' in directory ${ref.dir} (its name is '${shownEntry(kept.name)}' in directory ${kept.dir})`,
            { ino, ...entryRefs(this.layout, ref.dir, ref.name) },
            removeEntry(ref),
          );
        }
        this.checkParent(node, kept.dir, `is named '${shownEntry(kept.name)}' in directory ${kept.dir}`);
        expected = 2 + (subdirs.get(ino) ?? 0);
        why = `it has ${expected - 2} subdirector${expected === 3 ? 'y' : 'ies'}`;
      }
      this.checkNlink(node, expected, why);
    }
  }

  private checkRoot(names: EntryRef[], subdirs: number): void {
    const root = this.image.inodes.get(ROOT_INO);
    if (!root) {
      this.add('root-missing', `the root directory (inode ${ROOT_INO}) is missing`, { ino: ROOT_INO, key: this.layout.inodes(ROOT_INO) }, {
        op: 'create-root',
        nlink: 2 + subdirs,
      });
    }
    for (const ref of names) {
      this.add(
        'dir-multiple-names',
        `the root directory is named '${shownEntry(ref.name)}' in directory ${ref.dir}`,
        { ino: ROOT_INO, ...entryRefs(this.layout, ref.dir, ref.name) },
        removeEntry(ref),
      );
    }
    if (!root?.readable) return;
    this.checkParent(root, ROOT_INO, 'is the root');
    this.checkNlink(root, 2 + subdirs, `it has ${subdirs} subdirector${subdirs === 1 ? 'y' : 'ies'}`);
  }

  private checkParent(node: InodeImage, parent: number, why: string): void {
    if (node.rawParent === String(parent)) return;
    const recorded = node.parent === undefined ? 'no parent' : `parent ${node.parent}`;
    this.add('dir-parent-wrong', `directory ${node.ino} records ${recorded} but ${why}`, { ino: node.ino, key: this.layout.inodes(node.ino) }, {
      op: 'set-parent',
      ino: node.ino,
      from: node.rawParent,
      to: parent,
    });
  }

  private checkNlink(node: InodeImage, expected: number, why: string): void {
    if (node.nlink === expected) return;
    this.add('nlink-wrong', `inode ${node.ino} (${node.type}) has nlink ${node.nlink}, expected ${expected}: ${why}`, { ino: node.ino, key: this.layout.inodes(node.ino) }, {
      op: 'set-nlink',
      ino: node.ino,
      from: node.rawNlink,
      to: expected,
    });
  }

  /** Entries and xattr hashes of inodes that are gone (or, for entries, not directories). */
  private checkStrayHashes(): void {
    const { inodes, dirs, xattrs } = this.image;
    for (const ino of [...dirs.keys()].sort((a, b) => a - b)) {
      const node = inodes.get(ino);
      if (ino === ROOT_INO || (node && (!node.readable || node.type === 'dir'))) continue;
      const why = node ? `inode ${ino} is a ${node.type}, not a directory` : `inode ${ino} does not exist`;
      this.add('stray-dir-hash', `entries hash ${this.layout.dir(ino)} (${dirs.get(ino)!.size} entries): ${why}`, { ino, key: this.layout.dir(ino) }, {
        op: 'delete-hash',
        which: 'dir',
        ino,
      });
    }
    for (const ino of [...xattrs].sort((a, b) => a - b)) {
      if (inodes.has(ino)) continue;
      this.add('stray-xattr-hash', `xattr hash ${this.layout.xattr(ino)}: inode ${ino} does not exist`, { ino, key: this.layout.xattr(ino) }, {
        op: 'delete-hash',
        which: 'xattr',
        ino,
      });
    }
  }

  /**
   * Symlinks against their target keys `{P}:l:<n>`: a symlink without one cannot be read (its
   * target is lost: reported, never repaired); a target key of an inode that is gone or is not
   * a symlink is stray (repair deletes it).
   */
  private checkTargets(): void {
    const { inodes, targets } = this.image;
    for (const ino of [...inodes.keys()].sort((a, b) => a - b)) {
      const node = inodes.get(ino)!;
      if (!node.readable || node.type !== 'symlink' || targets.has(ino)) continue;
      const key = this.layout.target(ino);
      this.add('inode-unreadable', `symlink ${ino} has no target: its key ${key} is missing, so readlink fails`, { ino, key });
    }
    for (const ino of [...targets].sort((a, b) => a - b)) {
      const node = inodes.get(ino);
      if (node && (!node.readable || node.type === 'symlink')) continue;
      const why = node ? `inode ${ino} is a ${node.type}, not a symlink` : `inode ${ino} does not exist`;
      this.add('stray-target', `symlink target ${this.layout.target(ino)}: ${why}`, { ino, key: this.layout.target(ino) }, {
        op: 'delete-hash',
        which: 'target',
        ino,
      });
    }
  }

  /** `{P}:st` against what was counted, and `{P}:ino` against the highest inode number seen. */
  private totals(): Finding[] {
    const out: Finding[] = [];
    let bytes = 0n;
    // An unreadable inode of unknown type may or may not be a file: its bytes cannot be judged.
    let bytesKnown = true;
    for (const node of this.image.inodes.values()) {
      if (node.type === 'file') bytes += BigInt(node.size);
      if (node.type === undefined) bytesKnown = false;
    }
    const inodes = this.image.inodes.size;
    const st = this.image.stats ?? {};
    const same = (raw: string | undefined, want: bigint) => raw !== undefined && /^\d+$/.test(raw) && BigInt(raw) === want;
    if (!bytesKnown && st.bytes !== undefined && /^\d+$/.test(st.bytes)) bytes = BigInt(st.bytes);
    // A bucket that is not a hash hides how many inodes it held: the counters cannot be judged.
    const countable = this.image.badBuckets.size === 0;
    if (countable && !this.flaggedKeys.has(this.layout.stats) && (!same(st.inodes, BigInt(inodes)) || !same(st.bytes, bytes))) {
      const says = this.image.stats ? `says ${st.inodes ?? '?'} inodes and ${st.bytes ?? '?'} bytes` : 'is missing';
      out.push(
        finding('stats-mismatch', `usage counters ${this.layout.stats} ${says}; counted ${inodes} inodes and ${bytes} bytes`, { key: this.layout.stats }, {
          op: 'set-stats',
          from: { inodes: st.inodes ?? '', bytes: st.bytes ?? '' },
          to: { inodes, bytes: bytes.toString() },
        }),
      );
    }
    const counter = this.image.counter;
    const value = counter !== undefined && /^\d+$/.test(counter) ? Number(counter) : undefined;
    if (!this.flaggedKeys.has(this.layout.inoCounter) && (value === undefined || value < this.maxIno)) {
      const says = counter === undefined ? 'is missing' : `is ${JSON.stringify(counter)}`;
      out.push(
        finding('inode-counter-behind', `inode counter ${this.layout.inoCounter} ${says}, but inode ${this.maxIno} is in use`, { key: this.layout.inoCounter }, {
          op: 'raise-counter',
          to: this.maxIno,
        }),
      );
    }
    return out;
  }
}

export function finding(kind: FsckProblemKind, message: string, refs: Refs, action?: RepairAction): Finding {
  return { problem: { kind, message, ...refs, repairable: action !== undefined }, action };
}

/** The inode number of an entry value (type char + decimal ino); undefined when corrupt. */
export function entryIno(value: string): number | undefined {
  return parseIno(value.slice(1));
}

/** An inode number written as the layout writes one (decimal, no leading zero); undefined for anything else. */
export function parseIno(digits: string): number | undefined {
  if (!/^[1-9]\d{0,15}$/.test(digits)) return undefined;
  const ino = Number(digits);
  return Number.isSafeInteger(ino) ? ino : undefined;
}
