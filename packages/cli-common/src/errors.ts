/** Exit codes and the usage error, the same for every redisfs command-line tool. */

export const EXIT_OK = 0;
/** The command failed or was refused (Redis unreachable, store or FUSE error, target not empty). */
export const EXIT_FAILURE = 1;
/** Bad command line, unusable mountpoint, missing prerequisite. */
export const EXIT_USAGE = 2;

/** A problem the user fixes by changing the command line or the machine: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The exit code for an error: 2 for usage errors, 1 otherwise. */
export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * A reader that closes our output early (`redisfs status | head -1`) is no error of ours: the
 * process ends quietly, as Unix tools do, instead of with an unhandled EPIPE and a stack trace.
 */
export function endQuietlyOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(EXIT_OK);
      throw err;
    });
  }
}
