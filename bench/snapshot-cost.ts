/**
 * What a snapshot costs: time and Redis memory to snapshot a filesystem of FILES files and
 * TOTAL bytes, as ratios to a full server-side copy of the same keys, metadata and data blocks
 * (SCAN + COPY in pipelined batches, the cheapest copy Redis can do, but not point-in-time)
 * measured in the same run on the same server. A snapshot (layout 2) copies metadata only and
 * shares the blocks. Then checks that deleting a snapshot frees exactly what only it
 * referenced: files overwritten after the snapshot keep their old blocks for it, and those,
 * and nothing else, go with it (exits 1 otherwise).
 *
 *   pnpm bench:snapshot                 10,000 files, 1 GiB (needs ~4 GiB of RAM for Redis)
 *   pnpm bench:snapshot --quick         1,000 files, 64 MiB
 *
 * Prints a table and, last, one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from '@redis/client';
import { keysFor } from '@redisfs/schema';
import { deleteFilesystem, openStore, snapshotFilesystem, type Store } from '@redisfs/store';
import { startRedis } from '@redisfs/testing';

const quick = process.argv.includes('--quick');
const FILES = quick ? 1_000 : 10_000;
const TOTAL = quick ? 64 * 2 ** 20 : 2 ** 30;
const FILE_SIZE = Math.floor(TOTAL / FILES);
const WRITERS = 16;

const makeClient = (url: string) => createClient({ url });
type Client = ReturnType<typeof makeClient>;

async function usedMemory(client: Client): Promise<number> {
  const info = await client.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)![1]);
}

/** SCAN + COPY of every key of `from`, metadata and blocks, to family `to`, 200 per pipelined MULTI: the baseline. */
async function plainCopy(client: Client, from: string, to: string): Promise<number> {
  const src = keysFor(from);
  const dst = keysFor(to);
  const heads: [string, string, string][] = [
    [src.metaPattern, src.metaPrefix, dst.metaPrefix],
    [src.blockPattern, `${src.family}:b:`, `${dst.family}:b:`],
  ];
  let n = 0;
  for (const [pattern, fromHead, toHead] of heads) {
    for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 200 })) {
      const multi = client.multi();
      for (const k of keys) multi.copy(k, toHead + k.slice(fromHead.length));
      n += (await multi.execAsPipeline()).length;
    }
  }
  return n;
}

/** Data block keys of a family. */
async function blockKeys(client: Client, prefix: string): Promise<number> {
  let n = 0;
  for await (const keys of client.scanIterator({ MATCH: keysFor(prefix).blockPattern, COUNT: 1000 })) n += keys.length;
  return n;
}

type Measured = { seconds: number; bytes: number };

async function measure(client: Client, what: () => Promise<unknown>): Promise<Measured> {
  const before = await usedMemory(client);
  const start = process.hrtime.bigint();
  await what();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, bytes: (await usedMemory(client)) - before };
}

await using redis = await startRedis({ args: ['--save', '', '--appendonly', 'no'] });
const client = makeClient(redis.url);
await client.connect();
try {
  const store: Store = await openStore({ url: redis.url, prefix: 'fs' });
  const started = Date.now();
  for (let d = 0; d < 100; d++) await store.mkdirp(`/d${d}`);
  let next = 0;
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (let i = next++; i < FILES; i = next++) await store.writeFile(`/d${i % 100}/f${i}`, randomBytes(FILE_SIZE));
    }),
  );
  await store.collected();
  const fill = (Date.now() - started) / 1000;
  const dbsize = await client.dbSize();
  const base = await usedMemory(client);

  // Alternate the two, twice, and keep each one's best run: neither gains from going first.
  const runs: { plain: Measured[]; snap: Measured[] } = { plain: [], snap: [] };
  for (let round = 0; round < 2; round++) {
    runs.plain.push(await measure(client, () => plainCopy(client, 'fs', 'plain')));
    await deleteFilesystem({ url: redis.url, prefix: 'plain' });
    runs.snap.push(await measure(client, () => snapshotFilesystem({ url: redis.url, from: 'fs', to: 'fs@snap' })));
    await deleteFilesystem({ url: redis.url, prefix: 'fs@snap' });
  }
  const best = (ms: Measured[]) => ms.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const plain = best(runs.plain);
  const snap = best(runs.snap);

  // Deleting a snapshot frees exactly what only it referenced.
  const blocksBefore = await blockKeys(client, 'fs');
  await snapshotFilesystem({ url: redis.url, from: 'fs', to: 'fs@check' });
  const overwritten = Math.max(1, Math.floor(FILES / 10));
  for (let i = 0; i < overwritten; i++) await store.writeFile(`/d${i % 100}/f${i}`, randomBytes(FILE_SIZE));
  await store.collected();
  const perFile = Math.ceil(FILE_SIZE / store.blockSize);
  const blocksShared = await blockKeys(client, 'fs');
  await deleteFilesystem({ url: redis.url, prefix: 'fs@check' });
  await store.collected();
  const blocksAfter = await blockKeys(client, 'fs');
  const freedExactly = blocksShared === blocksBefore + overwritten * perFile && blocksAfter === blocksBefore;
  await store.close();

  const result = {
    files: FILES,
    bytes: FILES * FILE_SIZE,
    keys: dbsize,
    fillSeconds: fill,
    redisMemoryBytes: base,
    plainCopy: plain,
    snapshot: snap,
    timeRatio: snap.seconds / plain.seconds,
    memoryRatio: snap.bytes / plain.bytes,
    deleteCheck: { blocksBefore, overwrittenFiles: overwritten, blocksWithSnapshot: blocksShared, blocksAfterDelete: blocksAfter, freedExactly },
  };
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(`filesystem: ${FILES} files, ${mib(result.bytes)} in ${dbsize} keys; Redis uses ${mib(base)} (filled in ${fill.toFixed(1)} s)`);
  console.log(`plain SCAN+COPY : ${plain.seconds.toFixed(2)} s, +${mib(plain.bytes)}`);
  console.log(`snapshot        : ${snap.seconds.toFixed(2)} s, +${mib(snap.bytes)}`);
  console.log(`ratio           : time ${result.timeRatio.toFixed(2)}x, memory ${result.memoryRatio.toFixed(3)}x`);
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(`targets         : memory <= 5% of a full copy: ${verdict(result.memoryRatio <= 0.05)}; time <= 0.2 s: ${verdict(snap.seconds <= 0.2)}`);
  console.log(
    `delete check    : ${blocksBefore} blocks; with the snapshot and ${overwritten} files overwritten ${blocksShared}; ` +
      `after deleting it ${blocksAfter}: ${freedExactly ? 'freed exactly what only the snapshot referenced' : 'FAILED'}`,
  );
  console.log(JSON.stringify(result));
  if (!freedExactly) process.exitCode = 1;
} finally {
  await client.close();
}
