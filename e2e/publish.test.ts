/**
 * What a user gets from `npm install -g @redisfs/mount @redisfs/snapshot` once the packages are
 * published: every publishable package of the workspace is packed with `pnpm pack` (as
 * `pnpm publish` would pack it), the tarballs are served as the registry of the @redisfs scope
 * (`--@redisfs:registry`, a small HTTP server in this test), and the third-party dependencies come
 * from the npm registry. npm compiles @redisfs/fuse-native (`node-gyp rebuild` against the system
 * libfuse), and the installed `redisfs` mounts a filesystem that reads and writes: with upstream's
 * fuse-native, which a packed @redisfs/fuse used to depend on, every access was EIO.
 *
 * Opt-in with REDISFS_PUBLISH_TEST=1: it needs the npm registry and takes a minute or two.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  findExecutable,
  mountRedisfs,
  prerequisitesMet,
  run,
  runOk,
  startRedis,
  tempDir,
  uniquePrefix,
} from './helpers/index.js';

const ready = await prerequisitesMet({ fuse: true });
const optedIn = process.env.REDISFS_PUBLISH_TEST === '1';

/** A packed package: its manifest as published, and its tarball. */
interface Packed {
  name: string;
  version: string;
  manifest: Record<string, unknown>;
  file: string;
  data: Buffer;
}

/** `pnpm pack`s every package and app that is not private into `dest`. */
async function packWorkspace(dest: string): Promise<Packed[]> {
  const dirs: string[] = [];
  for (const group of ['packages', 'apps']) {
    for (const entry of await readdir(join(REPO_ROOT, group), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(REPO_ROOT, group, entry.name);
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { private?: boolean };
      if (!pkg.private) dirs.push(dir);
    }
  }
  for (const dir of dirs) await runOk('pnpm', ['pack', '--pack-destination', dest], { cwd: dir });
  const packed: Packed[] = [];
  for (const file of (await readdir(dest)).filter((f) => f.endsWith('.tgz'))) {
    const path = join(dest, file);
    const manifest = JSON.parse(await runOk('tar', ['-xzOf', path, 'package/package.json'])) as Record<string, unknown>;
    packed.push({ name: String(manifest.name), version: String(manifest.version), manifest, file, data: await readFile(path) });
  }
  return packed;
}

/** A registry serving the packed packages (packuments and tarballs) on 127.0.0.1; 404 for the rest. */
async function serveRegistry(packed: Packed[]): Promise<{ url: string } & AsyncDisposable> {
  let base = '';
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/').slice(1);
    const tarball = packed.find((p) => path === `-/${p.file}`);
    if (tarball) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': tarball.data.length });
      res.end(tarball.data);
      return;
    }
    const versions = packed.filter((p) => p.name === path);
    if (versions.length === 0) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found"}');
      return;
    }
    const packument = {
      name: path,
      'dist-tags': { latest: versions[0]!.version },
      versions: Object.fromEntries(
        versions.map((p) => [
          p.version,
          {
            ...p.manifest,
            _id: `${p.name}@${p.version}`,
            dist: {
              tarball: `${base}/-/${p.file}`,
              integrity: `sha512-${createHash('sha512').update(p.data).digest('base64')}`,
              shasum: createHash('sha1').update(p.data).digest('hex'),
            },
          },
        ]),
      ),
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(packument));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  server.unref();
  return { url: `${base}/`, [Symbol.asyncDispose]: close };
}

describe.skipIf(!ready)('publishing (pnpm pack, then npm install -g as a user would)', () => {
  it.skipIf(!optedIn)(
    'npm install -g @redisfs/mount @redisfs/snapshot compiles the FUSE binding; the installed redisfs runs from / and mounts a filesystem that writes and reads (REDISFS_PUBLISH_TEST=1: needs the npm registry)',
    async () => {
      await using work = await tempDir('publish');
      const packed = await packWorkspace(work.path);
      const names = packed.map((p) => p.name);
      expect(names).toEqual(expect.arrayContaining(['@redisfs/fuse-native', '@redisfs/fuse', '@redisfs/mount', '@redisfs/snapshot']));
      // The packed adapter depends on the fork by its import name, never on upstream's fuse-native.
      const fuse = packed.find((p) => p.name === '@redisfs/fuse')!;
      const native = packed.find((p) => p.name === '@redisfs/fuse-native')!;
      expect((fuse.manifest.dependencies as Record<string, string>)['fuse-native']).toBe(`npm:@redisfs/fuse-native@^${native.version}`);

      await using registry = await serveRegistry(packed);
      const prefix = work.join('global');
      const bin = join(prefix, 'bin');
      // What a login shell gives: the install prefix, node, the system dirs; no pnpm variables.
      // The machine's CA bundle is kept: a TLS-inspecting proxy may stand before the registry.
      const env: NodeJS.ProcessEnv = {
        PATH: [bin, dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
        HOME: process.env.HOME ?? '/root',
        LANG: 'C.UTF-8',
        ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
      };
      const npm = findExecutable('npm') ?? 'npm';
      // --prefix also moves npm's global config to <prefix>/etc/npmrc: keep the machine's (its
      // registry, proxy, cafile), as a plain `npm install -g` would read it.
      const globalconfig = (await runOk(npm, ['config', 'get', 'globalconfig'], { cwd: '/', env })).trim();
      const install = await run(
        npm,
        [
          'install', '-g', '--prefix', prefix, '--globalconfig', globalconfig,
          `--@redisfs:registry=${registry.url}`, '--cache', work.join('npm-cache'), '--no-audit', '--no-fund',
          '@redisfs/mount', '@redisfs/snapshot',
        ],
        { cwd: '/', env, timeoutMs: 600_000 },
      );
      expect(install, install.stderr).toMatchObject({ code: 0 });

      // The binding npm installed is the fork, compiled here against the system libfuse 2.
      const addons = (await runOk('find', [join(prefix, 'lib/node_modules'), '-path', '*/build/Release/fuse.node'])).trim().split('\n');
      expect(addons).toHaveLength(1);
      const addonPackage = JSON.parse(await readFile(join(dirname(dirname(dirname(addons[0]!))), 'package.json'), 'utf8')) as { name: string };
      expect(addonPackage.name).toBe('@redisfs/fuse-native');
      expect(await runOk('ldd', [addons[0]!])).toMatch(/libfuse\.so\.2 => /);

      const which = await run('bash', ['-c', 'command -v redisfs redisfs-snapshot'], { cwd: '/', env });
      expect(which.stdout.trim().split('\n')).toEqual([join(bin, 'redisfs'), join(bin, 'redisfs-snapshot')]);
      const help = await run('redisfs', ['--help'], { cwd: '/', env });
      expect(help, help.stderr).toMatchObject({ code: 0 });
      expect(help.stdout).toContain('redisfs --mount DIR');
      const snapshotHelp = await run('redisfs-snapshot', ['--help'], { cwd: '/', env });
      expect(snapshotHelp, snapshotHelp.stderr).toMatchObject({ code: 0 });
      expect(snapshotHelp.stdout).toContain('--from');

      await using redis = await startRedis();
      const prefixKey = uniquePrefix('publish');
      const content = 'written through the npm-installed redisfs\n';
      {
        await using mnt = await mountRedisfs({ redis, prefix: prefixKey, cli: join(bin, 'redisfs') });
        await writeFile(mnt.path('hello.txt'), content);
        expect(await readFile(mnt.path('hello.txt'), 'utf8')).toBe(content);
        expect(await readdir(mnt.dir)).toContain('hello.txt');
        const { exit, forced } = await mnt.unmount();
        expect({ exit, forced, stderr: mnt.stderr() }).toMatchObject({ exit: { code: 0, signal: null }, forced: false });
      }
      // The file is in Redis: a new mount of the same prefix reads it.
      await using again = await mountRedisfs({ redis, prefix: prefixKey, cli: join(bin, 'redisfs') });
      expect(await readFile(again.path('hello.txt'), 'utf8')).toBe(content);
    },
    900_000,
  );
});
