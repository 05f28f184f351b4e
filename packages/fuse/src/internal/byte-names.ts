/**
 * Names are bytes: every byte but `/` and NUL, stored, listed, compared and returned exactly,
 * whether or not they are valid UTF-8 (as on any Linux filesystem). The binding hands paths to
 * the handlers as byte strings, one char (U+0000..U+00FF) per byte (latin1, see
 * fuse-native.d.ts), so the adapter's path code (posix.dirname, cache keys, prefixes) works on
 * them unchanged. They become bytes only at the store boundary (`toBytes`: the store takes a
 * Buffer as the exact bytes of a name or path) and bytes from the store become byte strings
 * (`fromBytes`). Never decode them as UTF-8, except for people to read (`displayPath`).
 */
import { isUtf8 } from 'node:buffer';

/** The bytes of a byte string from the binding: what goes to the store. */
export function toBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Bytes from the store as a byte string, what the binding answers with. */
export function fromBytes(bytes: Buffer): string {
  return bytes.toString('latin1');
}

/**
 * A byte string as people read it, for log lines and error messages: decoded as UTF-8, lossy
 * (an invalid sequence shows as U+FFFD). Text that is not a byte string is returned as it is.
 */
export function displayPath(s: string): string {
  // Only ASCII, or already text (a char above U+00FF): nothing to decode.
  if (!/[\x80-\xff]/.test(s) || /[^\x00-\xff]/.test(s)) return s;
  return Buffer.from(s, 'latin1').toString('utf8');
}

/**
 * Extended attribute names. The store keeps them as (UTF-8) strings, as it always did, so a
 * name from the binding (a byte string) goes to it decoded as UTF-8: ASCII names, and names
 * that are valid UTF-8, are stored exactly as before this binding passed bytes. A name that is
 * not valid UTF-8 has no string the store could keep exactly: undefined (setxattr refuses it
 * with EINVAL; getxattr/removexattr answer ENODATA, as none can be stored).
 */
export function xattrNameToStore(name: string): string | undefined {
  const bytes = toBytes(name);
  return isUtf8(bytes) ? bytes.toString('utf8') : undefined;
}

/** A stored xattr name (a UTF-8 string) as the byte string the binding lists. */
export function xattrNameFromStore(name: string): string {
  return fromBytes(Buffer.from(name, 'utf8'));
}
