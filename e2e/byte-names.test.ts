/**
 * Names are bytes (issue 12): every byte but '/' and NUL belongs to a name, and a name is
 * stored, listed, compared and returned exactly, valid UTF-8 or not, as on tmpfs. Checked on a
 * real mount with node:fs and Buffer paths (a string path would be encoded as UTF-8): each
 * single-byte name and a set of invalid UTF-8 sequences are created, listed (compared byte for
 * byte), read back, renamed and removed; a symlink target with invalid bytes reads back exactly.
 * Before the binding passed paths as bytes, each invalid sequence became U+FFFD: `\xff` and
 * `\xfe` were one file, and `report\x81` was written into `report\x80`.
 */
import { lstat, mkdir, readFile, readdir, readlink, rename, rmdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { describeWithRedis, expectFsckClean, mountRedisfs, uniquePrefix } from './helpers/index.js';

const SLASH = 0x2f;
const DOT = 0x2e;

/** Names that are not valid UTF-8 (and two that are), on top of the single bytes 0x80..0xff. */
const SEQUENCES = [
  [0xc3, 0x28], // a lead byte with no continuation
  [...Buffer.from('report'), 0x80],
  [...Buffer.from('report'), 0x81],
  [0xef, 0xbf, 0xbd], // U+FFFD itself (valid): what the invalid names used to become
  [0xc0, 0xaf], // an overlong '/'
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xe2, 0x82], // cut short
  [0xff, 0xfe, 0xfd],
  [...Buffer.from('caf'), 0xc3, 0xa9], // "café" (valid)
].map((bytes) => Buffer.from(bytes));

/** Every name the test makes: each byte 1..255 but '/' and '.' (reserved), then SEQUENCES. */
function namesToMake(): Buffer[] {
  const singles: Buffer[] = [];
  for (let b = 1; b <= 255; b++) if (b !== SLASH && b !== DOT) singles.push(Buffer.from([b]));
  return [...singles, ...SEQUENCES];
}

const hexSorted = (names: readonly Buffer[]): string[] => names.map((n) => n.toString('hex')).sort();

/** What a file named `name` holds: its own bytes, so a write into another name shows. */
const contentOf = (name: Buffer): Buffer => Buffer.concat([Buffer.from('content of '), Buffer.from(name.toString('hex'))]);

await describeWithRedis('names are bytes', { fuse: true }, (redis) => {
  it('every single byte but "/" and ".", and invalid UTF-8 sequences, are distinct names through create, list, read, rename and remove', async () => {
    const prefix = uniquePrefix('byte-names');
    const names = namesToMake();
    expect(new Set(names.map((n) => n.toString('hex'))).size).toBe(names.length);
    {
      await using mnt = await mountRedisfs({ redis, prefix });
      const dir = Buffer.from(mnt.path('names'));
      const at = (name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name]);
      await mkdir(dir);

      for (const name of names) await writeFile(at(name), contentOf(name), { flag: 'wx' });
      expect(hexSorted(await readdir(dir, { encoding: 'buffer' }))).toEqual(hexSorted(names));
      for (const name of names) {
        const hex = name.toString('hex');
        expect({ hex, content: (await readFile(at(name))).toString() }).toEqual({ hex, content: contentOf(name).toString() });
      }
      // The case: neither of two names that differ in an invalid byte writes the other.
      const [r80, r81] = [at(SEQUENCES[1]!), at(SEQUENCES[2]!)];
      await writeFile(r81, 'x');
      expect((await readFile(r80)).toString()).toBe(contentOf(SEQUENCES[1]!).toString());

      // Each to a name with one more invalid byte (distinct: the suffix is the same for all), and back.
      const renamed = (name: Buffer): Buffer => Buffer.concat([name, Buffer.from([0xfe])]);
      for (const name of names) await rename(at(name), at(renamed(name)));
      expect(hexSorted(await readdir(dir, { encoding: 'buffer' }))).toEqual(hexSorted(names.map(renamed)));
      for (const name of names) await rename(at(renamed(name)), at(name));
      expect(hexSorted(await readdir(dir, { encoding: 'buffer' }))).toEqual(hexSorted(names));

      const target = Buffer.from('tgt\xff\xfe', 'latin1');
      const link = at(Buffer.from('link\x80', 'latin1'));
      await symlink(target, link);
      expect((await readlink(link, { encoding: 'buffer' })).toString('hex')).toBe(target.toString('hex'));
      expect((await lstat(link)).size).toBe(target.length);
    }

    {
      // Another mount (nothing cached): what Redis holds is the exact bytes.
      await using mnt = await mountRedisfs({ redis, prefix });
      const dir = Buffer.from(mnt.path('names'));
      const at = (name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name]);
      const link = Buffer.from('link\x80', 'latin1');
      expect(hexSorted(await readdir(dir, { encoding: 'buffer' }))).toEqual(hexSorted([...names, link]));
      expect((await readlink(at(link), { encoding: 'buffer' })).toString('latin1')).toBe('tgt\xff\xfe');
      for (const name of names.filter((n) => !n.equals(SEQUENCES[2]!))) {
        expect((await readFile(at(name))).toString()).toBe(contentOf(name).toString());
      }

      for (const name of [...names, link]) await unlink(at(name));
      expect(await readdir(dir, { encoding: 'buffer' })).toEqual([]);
      await rmdir(dir);
    }
    await expectFsckClean(redis, prefix);
  });
});
