/**
 * fsck, judging one filesystem's block maps (`m:<ino>`: block index → block id) against its
 * inodes: a map belongs to a live regular file, holds no entry at or past the end of the file,
 * and every entry names a block that is stored. Maps of inodes listed in `{P}:gc` are the
 * collector's (pending, not a problem). No I/O here: the scan feeds the entries in.
 */
import { BLOCK_ID_PATTERN, decodeGcEntry, type KeyLayout } from '@redisfs/schema';
import { finding, type Finding } from './fsck-check.js';
import type { InodeImage, MapEntry, MetaImage } from './fsck-scan.js';

export class MapCheck {
  /** Inodes pending collection in `{P}:gc`: their maps may hold entries to release. */
  private readonly gc = new Set<number>();
  /** Per block map: its entries, and those at or past the end of its file. */
  private readonly maps = new Map<number, { entries: number; pastEof: number }>();
  /** Map keys that are not sorted sets (reported as unexpected, never released). */
  private readonly badMaps = new Set<number>();
  private readonly corrupt: Finding[] = [];
  /** Entries of live files whose block key the block scan did not see: confirmed by {@link storedAfterAll}. */
  private missing: { ino: number; index: number; id: string }[] = [];

  constructor(
    private readonly image: MetaImage,
    private readonly layout: KeyLayout,
    private readonly blockSize: number,
    /** Live inodes not reachable from the root: their repair releases their maps whole. */
    private readonly orphans: ReadonlyMap<number, InodeImage>,
  ) {
    // A member this layout does not write (layout 1's `ino:from:to`) is dropped by the collector.
    for (const member of image.gc) {
      const ino = decodeGcEntry(member);
      if (ino !== undefined) this.gc.add(ino);
    }
  }

  /**
   * Judges a page of entries of the block map of `ino` (no entry twice: the scan sees to it);
   * `stored(id)`: whether the block scan saw its key.
   */
  entries(ino: number, entries: readonly MapEntry[], stored: (id: string) => boolean): void {
    const map = this.maps.get(ino) ?? { entries: 0, pastEof: 0 };
    this.maps.set(ino, map);
    map.entries += entries.length;
    const node = this.image.inodes.get(ino);
    // Unreadable inodes are left alone (their map may be all that is left of the data); a
    // pending, orphaned or dead file's entries are released whole anyway.
    const live = node?.readable === true && node.type === 'file' && !this.orphans.has(ino) && !this.gc.has(ino);
    const blocks = live ? Math.ceil(node.size / this.blockSize) : 0;
    for (const { id, index } of entries) {
      if (!BLOCK_ID_PATTERN.test(id) || !Number.isSafeInteger(index) || index < 0) {
        if (node?.readable !== false) this.corruptEntry(ino, id, index);
      } else if (!live) continue;
      else if (index >= blocks) map.pastEof++;
      else if (!stored(id)) this.missing.push({ ino, index, id });
    }
  }

  /** A block map key that is not a sorted set: returns the reason to report it as unexpected. */
  notZset(ino: number): string {
    this.badMaps.add(ino);
    return 'is not a sorted set (a block map must be one)';
  }

  /** How many entries the map of `ino` holds. */
  entriesOf(ino: number): number {
    return this.maps.get(ino)?.entries ?? 0;
  }

  /** Entries in every map of this filesystem: the blocks its files reference. */
  get mapped(): number {
    let n = 0;
    for (const map of this.maps.values()) n += map.entries;
    return n;
  }

  /** Block ids a live file references whose key the block scan did not see: to be confirmed. */
  missingCandidates(): string[] {
    return [...new Set(this.missing.map((m) => m.id))];
  }

  /** Of the candidates, those whose key exists after all (stored since the block scan). */
  storedAfterAll(ids: ReadonlySet<string>): void {
    this.missing = this.missing.filter((m) => !ids.has(m.id));
  }

  /** Orphan maps, entries past the end of their file, corrupt entries, missing blocks. */
  findings(): Finding[] {
    const out: Finding[] = [...this.corrupt];
    for (const ino of [...this.maps.keys()].sort((a, b) => a - b)) {
      const { entries, pastEof } = this.maps.get(ino)!;
      const node = this.image.inodes.get(ino);
      const key = this.layout.map(ino);
      if (this.gc.has(ino) || this.badMaps.has(ino) || node?.readable === false || this.orphans.has(ino)) continue;
      if (!node || node.type !== 'file') {
        const why = node ? `is a ${node.type}, not a regular file` : 'does not exist';
        out.push(
          finding('orphan-map', `block map ${key} (${entries} block(s)): inode ${ino} ${why}, and it is not pending in ${this.layout.gc}`, { ino, key }, {
            op: 'release-map',
            ino,
            whole: true,
          }),
        );
      } else if (pastEof > 0) {
        const blocks = Math.ceil(node.size / this.blockSize);
        out.push(
          finding(
            'block-past-eof',
            `inode ${ino}: ${pastEof} block(s) of its map lie at or past the end of the file (size ${node.size}, ${blocks} block(s)), not pending in ${this.layout.gc}`,
            { ino, key },
            { op: 'release-map', ino, whole: false },
          ),
        );
      }
    }
    for (const { ino, index, id } of [...this.missing].sort((a, b) => a.ino - b.ino || a.index - b.index)) {
      out.push(
        finding(
          'block-missing',
          `DATA LOST: block ${index} of inode ${ino} (${this.image.inodes.get(ino)?.size ?? '?'} bytes) is block ${id}, whose key ${this.layout.block(id)} does not exist, so reading it fails (EIO); repair removes the entry, and the file then reads zeros there`,
          { ino, key: this.layout.map(ino) },
          { op: 'remove-map-entry', ino, id, index, missing: true },
        ),
      );
    }
    return out;
  }

  private corruptEntry(ino: number, id: string, index: number): void {
    this.corrupt.push(
      finding(
        'map-entry-corrupt',
        `block map ${this.layout.map(ino)} holds ${JSON.stringify(id)} at ${index}: not a block id at a block index`,
        { ino, key: this.layout.map(ino) },
        { op: 'remove-map-entry', ino, id, index, missing: false },
      ),
    );
  }
}
