/**
 * `redisfs server status|stop`: the private, per-user redis-server (see @redisfs/cli-common's
 * private-redis). Placeholder: filled in by the private-Redis work.
 */
import { EXIT_USAGE } from '@redisfs/cli-common';
import type { Output } from './run.js';

export async function runServerCommand(args: string[], io: Output): Promise<number> {
  io.err(`redisfs server: not implemented yet (${args.join(' ')})`);
  return EXIT_USAGE;
}
