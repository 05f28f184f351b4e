/** The scrubbing every output line of a CLI goes through, so that no password is ever printed. */
import { URL_ENV } from './redis-target.js';

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

/** The password of a URL, raw and decoded, for {@link scrubSecrets}; none when there is none or it is not a URL. */
export function secretsOfUrl(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const { password } = new URL(url);
    return password ? [...new Set([password, decodeURIComponent(password)])] : [];
  } catch {
    return [];
  }
}

/**
 * The URL passwords on a command line (`--url URL` and `--url=URL`) and in {@link URL_ENV}.
 * Known before parsing, so that even a parser's error line cannot carry a password.
 */
export function secretsOfCommandLine(args: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  return [...args, env[URL_ENV] ?? ''].flatMap((a) => secretsOfUrl(a.replace(/^--?[\w-]+=/, '')));
}
