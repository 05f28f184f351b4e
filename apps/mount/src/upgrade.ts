/**
 * `redisfs upgrade`: parses (upgrade-args.ts), runs the store's upgradeFilesystem with a progress
 * line on a terminal, and prints a one-line summary. All converting lives in @redisfs/store.
 */
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, findPrivateRedis } from '@redisfs/cli-common';
import { isFsError, upgradeFilesystem, type UpgradeProgress, type UpgradeResult } from '@redisfs/store';
import { parseUpgradeArgs, type UpgradeConfig } from './upgrade-args.js';

/** Where output goes; the caller scrubs secrets from every line. */
export interface UpgradeOutput {
  out(line: string): void;
  err(line: string): void;
  /** Shows `line` as the one updating progress line ('' clears it); absent when stderr is no terminal. */
  progress?: ((line: string) => void) | undefined;
}

/** Runs `redisfs upgrade <args>` (the arguments after `upgrade`) and returns the exit code. */
export async function runUpgradeCommand(args: string[], io: UpgradeOutput, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: UpgradeConfig;
  try {
    const command = await parseUpgradeArgs(args, env);
    if (command.kind === 'done') return EXIT_OK;
    config = command.config;
    // Told nothing: the default address, or the private server `redisfs` starts when that is silent.
    if (config.url === undefined && config.socket === undefined) config = { ...config, socket: await findPrivateRedis(env) };
  } catch (err) {
    io.err(`redisfs upgrade: ${messageOf(err)}`);
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
  let result: UpgradeResult;
  try {
    result = await upgradeFilesystem({
      url: config.url,
      socket: config.socket,
      prefix: config.prefix,
      onProgress: io.progress && ((p) => io.progress?.(progressLine(config.prefix, p))),
    });
  } catch (err) {
    io.progress?.('');
    // Refusals change nothing; anything else stopped it halfway, where running it again resumes.
    const refused = isFsError(err) && ['ENOENT', 'EINVAL', 'EBUSY', 'EACCES'].includes(err.code);
    io.err(`redisfs upgrade: ${messageOf(err)}${refused ? '' : ' (run the same command again to resume)'}`);
    return EXIT_FAILURE;
  }
  io.progress?.('');
  io.out(summaryLine(result));
  return EXIT_OK;
}

/** The progress line: what the scan has seen and done so far. */
export function progressLine(prefix: string, p: UpgradeProgress): string {
  return `upgrading '${prefix}': ${count(p.scanned, 'key')} scanned, ${count(p.blocksMapped, 'block')} mapped, ${p.blocksDropped} dropped`;
}

/** The one line printed at the end. */
export function summaryLine(r: UpgradeResult): string {
  if (r.alreadyCurrent) return `'${r.prefix}' is already layout 2`;
  const note = r.began === 'resumed' ? ' (by this run, which resumed one cut short)' : r.began === 'restarted' ? ' (by this run, which started over one cut short)' : '';
  return `upgraded '${r.prefix}' to layout 2: ${count(r.blocksMapped, 'block')} mapped, ${r.blocksDropped} dropped${note}`;
}

function count(n: number, one: string): string {
  return `${n} ${n === 1 ? one : `${one}s`}`;
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

/** A progress line on a terminal: rewritten in place, at most every `intervalMs`; '' clears it. */
export function terminalProgress(write: (text: string) => void, intervalMs = 100, now = () => Date.now()): (line: string) => void {
  let last = 0;
  let shown = false;
  return (line) => {
    if (line === '') {
      if (shown) write('\r\x1b[K');
      shown = false;
      return;
    }
    const t = now();
    if (shown && t - last < intervalMs) return;
    last = t;
    shown = true;
    write(`\r\x1b[K${line}`);
  };
}
