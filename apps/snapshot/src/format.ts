/** Output formatting of `redisfs-snapshot`. */
import type { FilesystemInfo } from '@redisfs/store';

/** A time in ns since the epoch, as an ISO 8601 UTC string (millisecond precision). */
export function formatTime(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

/**
 * A table: name, a snapshot's point in time ('-' for a live filesystem, whose contents are of
 * now), bytes in files, live inodes, and what it is a snapshot of ('-' for a live filesystem).
 */
export function formatList(list: FilesystemInfo[]): string[] {
  const rows = [
    ['NAME', 'SNAPSHOT TIME', 'SIZE', 'INODES', 'SNAPSHOT OF'],
    ...list.map((fs) => {
      const of = fs.snapshot ? fs.snapshot.of : '-';
      return [
        fs.prefix,
        fs.createdNs === undefined ? '(corrupt superblock)' : fs.snapshot ? formatTime(fs.snapshot.atNs) : '-',
        String(fs.bytes),
        String(fs.inodes),
        fs.snapshotInProgress ? `${of} (now being snapshotted)` : of,
      ];
    }),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
