/** Output formatting of `redisfs-snapshot list`. */
import type { FilesystemInfo } from '@redisfs/store';

/** A table: prefix, creation time (UTC), live inodes, bytes in files. */
export function formatList(list: FilesystemInfo[]): string[] {
  const rows = [
    ['PREFIX', 'CREATED', 'INODES', 'BYTES'],
    ...list.map((fs) => [
      fs.prefix,
      fs.createdNs === undefined ? '(corrupt superblock)' : new Date(Number(fs.createdNs / 1_000_000n)).toISOString(),
      String(fs.inodes),
      String(fs.bytes),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
