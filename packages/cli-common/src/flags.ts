/** zod pieces for command-line flags. Their messages name the flag, never the value. */
import { z } from 'zod';
import { PREFIX_PATTERN } from '@redisfs/schema';

/**
 * The zod `error` option of a string flag: `<flag> is required`, `<flag> may be given only once`
 * (a repeated flag reaches zod as an array) or `<flag> must be a string`.
 */
export const stringFlagError = (flag: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? `${flag} is required` : Array.isArray(iss.input) ? `${flag} may be given only once` : `${flag} must be a string`;

/** A filesystem prefix given by `flag` (such as `--prefix`), checked against PREFIX_PATTERN. */
export function prefixSchema(flag: string) {
  return z.string({ error: stringFlagError(flag) }).regex(PREFIX_PATTERN, `${flag} must be 1-64 letters, digits, '_', '-' or '.', optionally followed by @ and a label of the same (a snapshot: skx@mon)`);
}
