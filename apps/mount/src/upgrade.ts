/**
 * `redisfs upgrade`: parses (upgrade-args.ts), runs the store's upgradeFilesystem with its
 * progress on stderr, and prints a one-line summary. All converting lives in @redisfs/store.
 */
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, resolveDefaultRedis, type PrivateRedis, type Progress } from '@redisfs/cli-common';
import { isFsError, upgradeFilesystem, type UpgradeResult } from '@redisfs/store';
import { parseUpgradeArgs, type UpgradeConfig } from './upgrade-args.js';

/** Where output goes; the caller scrubs secrets from every line. */
export interface UpgradeOutput {
  out(line: string): void;
  err(line: string): void;
  /** Starts the progress display (stderr) of a job whose lines begin with `label`; absent: none. */
  progress?: ((label: string) => Progress) | undefined;
}

/** Runs `redisfs upgrade <args>` (the arguments after `upgrade`) and returns the exit code. */
export async function runUpgradeCommand(args: string[], io: UpgradeOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: UpgradeConfig;
  // Told nothing: 127.0.0.1:6379, or else the private server (started if need be), held until done.
  let privateRedis: PrivateRedis | undefined;
  try {
    const command = await parseUpgradeArgs(args, env);
    if (command.kind === 'done') return EXIT_OK;
    config = command.config;
    if (config.url === undefined && config.socket === undefined) {
      privateRedis = await resolveDefaultRedis({ env });
      config = { ...config, socket: privateRedis?.socket };
    }
  } catch (err) {
    io.err(`redisfs upgrade: ${messageOf(err)}`);
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
  try {
    return await upgradeAndReport(config, io);
  } finally {
    privateRedis?.release();
  }
}

async function upgradeAndReport(config: UpgradeConfig, io: UpgradeOutput): Promise<number> {
  let result: UpgradeResult;
  const shown = io.progress?.(`redisfs upgrade: '${config.prefix}'`);
  try {
    result = await upgradeFilesystem({
      url: config.url,
      socket: config.socket,
      prefix: config.prefix,
      // What each pass's scan returns: the blocks (and the few other keys that match their
      // pattern), then the layout-2 inode hashes.
      onProgress: shown && ((p) => shown.update(
        p.phase === 'blocks'
          ? { phase: 'mapping blocks', done: p.scanned, total: p.total, unit: 'keys' }
          : { phase: 'converting inodes', done: p.scanned, total: p.total, unit: 'inodes' },
      )),
    });
  } catch (err) {
    shown?.abort();
    // Refusals change nothing; anything else stopped it halfway, where running it again resumes.
    const refused = isFsError(err) && ['ENOENT', 'EINVAL', 'EBUSY', 'EACCES'].includes(err.code);
    io.err(`redisfs upgrade: ${messageOf(err)}${refused ? '' : ' (run the same command again to resume)'}`);
    return EXIT_FAILURE;
  }
  shown?.finish();
  io.out(summaryLine(result));
  return EXIT_OK;
}

/** The one line printed at the end. */
export function summaryLine(r: UpgradeResult): string {
  if (r.alreadyCurrent) return `'${r.prefix}' is already layout 3`;
  const note = r.began === 'resumed' ? ' (by this run, which resumed one cut short)' : r.began === 'restarted' ? ' (by this run, which started over one cut short)' : '';
  const blocks = r.passes.includes('blocks') ? `, ${count(r.blocksMapped, 'block')} mapped, ${r.blocksDropped} dropped` : '';
  const kept = r.inodesKept > 0
    ? `; ${count(r.inodesKept, 'corrupt inode')} left as layout 2 (${r.keptInodes.slice(0, 5).join(', ')}${r.inodesKept > 5 ? ', …' : ''}): run redisfs fsck --prefix ${r.prefix}`
    : '';
  return `upgraded '${r.prefix}' to layout 3: ${count(r.inodesConverted, 'inode')} converted${blocks}${note}${kept}`;
}

function count(n: number, one: string): string {
  return `${n} ${n === 1 ? one : `${one}s`}`;
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
