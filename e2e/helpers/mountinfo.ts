/** Reading the kernel's mount table, the ground truth for "is it mounted" (proc(5) mountinfo). */
import { readFile } from 'node:fs/promises';

/** One line of /proc/self/mountinfo, the fields the harness needs. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options, e.g. ['ro', 'nosuid', 'nodev', 'relatime']. */
  options: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text: `id parent maj:min root mountpoint options [optional...] - fstype source superopts`. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0) continue;
    entries.push({
      mountPoint: unescapeOctal(fields[4] ?? ''),
      options: (fields[5] ?? '').split(','),
      fsType: fields[dash + 1] ?? '',
      source: unescapeOctal(fields[dash + 2] ?? ''),
    });
  }
  return entries;
}

/** The mount table as this process sees it. */
export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at `dir` (an absolute, symlink-free path), if any. */
export async function findMount(dir: string): Promise<MountEntry | undefined> {
  return (await readMounts()).filter((m) => m.mountPoint === dir).at(-1);
}

/** Whether something is mounted at `dir` (an absolute, symlink-free path). */
export async function isMounted(dir: string): Promise<boolean> {
  return (await findMount(dir)) !== undefined;
}
