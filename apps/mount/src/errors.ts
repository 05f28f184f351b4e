/** Exit codes, the usage error, and the scrubbing every output line goes through. */

export const EXIT_OK = 0;
/** The mount failed (Redis unreachable, store or FUSE error). */
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

/** `scheme://user:password@` → `scheme://user:***@` */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]*@/gi;

/**
 * Removes passwords from a line before it is printed: any `user:password@` in a URL, and each
 * known secret of 4 or more characters (shorter ones would mangle ordinary words).
 */
export function scrubSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, '$1***@');
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

/** The password of a URL, raw and decoded, for {@link scrubSecrets}; none when there is none. */
export function secretsOfUrl(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const { password } = new URL(url);
    return password ? [...new Set([password, decodeURIComponent(password)])] : [];
  } catch {
    return [];
  }
}
