/**
 * `redisfs status`: this host's redisfs mounts. Placeholder: filled in by the status work.
 */
import { EXIT_USAGE } from '@redisfs/cli-common';
import type { Output } from './run.js';

export async function runStatusCommand(args: string[], io: Output): Promise<number> {
  io.err(`redisfs status: not implemented yet (${args.join(' ')})`);
  return EXIT_USAGE;
}
