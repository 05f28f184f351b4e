import { describe, expect, it } from 'vitest';
import { displayPath, fromBytes, toBytes, xattrNameFromStore, xattrNameToStore } from './byte-names.js';
import { runOp } from './run-op.js';

/** The byte string the binding passes for these bytes (latin1, one char per byte). */
const b = (...bytes: number[]): string => Buffer.from(bytes).toString('latin1');

describe('byte names', () => {
  it('every byte but NUL round-trips between byte strings and the bytes the store gets', () => {
    const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
    expect(toBytes(fromBytes(all)).equals(all)).toBe(true);
    expect(fromBytes(all).length).toBe(255);
    // "/" stays "/": path arithmetic on byte strings is unchanged.
    expect(fromBytes(Buffer.from('/d/\xff', 'latin1')).split('/')).toEqual(['', 'd', b(0xff)]);
  });

  it('displayPath decodes UTF-8 for people, lossily, and leaves text alone', () => {
    expect(displayPath(`/caf${b(0xc3, 0xa9)}`)).toBe('/café');
    expect(displayPath(`/r${b(0x80)}`)).toBe('/r\ufffd');
    expect(displayPath('/plain')).toBe('/plain');
    expect(displayPath('already text: 日本')).toBe('already text: 日本');
  });

  it('log lines show paths decoded', () => {
    const lines: string[] = [];
    runOp({ debug: true, deadlineMs: 0, log: (l) => lines.push(l) }, 'unlink', `/caf${b(0xc3, 0xa9)}`, () => undefined, () => undefined);
    return expect.poll(() => lines.join('\n')).toMatch(/^unlink \/café -> ok/);
  });

  it('xattr names: valid UTF-8 goes to the store as text, anything else has no stored form', () => {
    expect(xattrNameToStore('user.a')).toBe('user.a');
    expect(xattrNameToStore(`user.caf${b(0xc3, 0xa9)}`)).toBe('user.café');
    expect(xattrNameToStore(`user.${b(0xff)}`)).toBeUndefined();
    expect(xattrNameToStore(`user.${b(0xc3, 0x28)}`)).toBeUndefined();
    expect(xattrNameFromStore('user.café')).toBe(`user.caf${b(0xc3, 0xa9)}`);
  });
});
