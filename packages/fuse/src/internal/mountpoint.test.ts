import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MountError } from '../errors.js';
import { checkMountpoint, parseMountinfo } from './mountpoint.js';

describe('parseMountinfo', () => {
  it('reads the mount point field and undoes octal escapes', () => {
    const text = [
      '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      '36 22 0:40 / /mnt/with\\040space rw,nosuid - fuse.redisfs redisfs rw,user_id=0',
      '',
    ].join('\n');
    expect([...parseMountinfo(text)]).toEqual(['/', '/mnt/with space']);
  });
});

describe('checkMountpoint', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'redisfs-mp-'));
    await mkdir(join(root, 'empty'));
    await mkdir(join(root, 'full'));
    await writeFile(join(root, 'full', 'x'), '');
    await writeFile(join(root, 'file'), '');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function codeOf(path: string): Promise<string | undefined> {
    try {
      await checkMountpoint(path);
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(MountError);
      return (err as MountError).code;
    }
  }

  it('accepts an empty directory and returns its real path', async () => {
    await expect(checkMountpoint(join(root, 'empty'))).resolves.toMatch(/empty$/);
  });

  it('explains what is wrong with the mountpoint', async () => {
    expect(await codeOf(join(root, 'missing'))).toBe('ENOENT');
    expect(await codeOf(join(root, 'file'))).toBe('ENOTDIR');
    expect(await codeOf(join(root, 'full'))).toBe('ENOTEMPTY');
    await expect(checkMountpoint(join(root, 'full'))).rejects.toThrow(`mountpoint ${join(root, 'full')} is not empty`);
  });

  it.skipIf(!existsSync('/proc/self/mountinfo'))('refuses a directory something is mounted on', async () => {
    expect(await codeOf('/proc')).toBe('EBUSY');
  });
});
