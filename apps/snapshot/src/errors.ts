/** Exit codes, the usage error, and the scrubbing every output line goes through. */

export const EXIT_OK = 0;
/** The operation failed or was refused (Redis unreachable, no such filesystem, target not empty). */
export const EXIT_FAILURE = 1;
/** Bad command line. */
export const EXIT_USAGE = 2;

/** A problem with the command line: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

/** `scheme://user:password@` → `scheme://user:***@` */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]*@/gi;

/** Removes URL passwords and each known secret of 4 or more characters from a line. */
export function scrubSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, '$1***@');
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

/** The password of a URL, raw and decoded; none when there is none or it is not a URL. */
export function secretsOfUrl(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const { password } = new URL(url);
    return password ? [...new Set([password, decodeURIComponent(password)])] : [];
  } catch {
    return [];
  }
}
