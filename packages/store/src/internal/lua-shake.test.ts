import { describe, expect, it } from 'vitest';
import { shakeLua } from './lua-shake.js';
import { SCRIPT_SOURCES } from './scripts.js';


describe('shakeLua', () => {
  it('drops top-level functions nothing refers to, keeps what is called, also through other functions', () => {
    const src = [
      'local function a(x) return x end',
      'local function b(x)',
      '  return a(x) + 1',
      'end',
      'local function unused(x)',
      '  return x',
      'end',
      'local function also_unused(x) return b(x) end',
      'local K = 3',
      'return b(K)',
    ].join('\n');
    expect(shakeLua(src)).toBe(['local function a(x) return x end', 'local function b(x)', '  return a(x) + 1', 'end', 'local K = 3', 'return b(K)'].join('\n'));
  });

  it('leaves a script whose function does not end as expected whole', () => {
    const src = 'local function a(x)\n  return x\n  end\nreturn 1';
    expect(shakeLua(src)).toBe(src);
  });

  it('keeps, in every script of the store, each local function the script calls', () => {
    for (const [name, src] of Object.entries(SCRIPT_SOURCES)) {
      const shaken = shakeLua(src);
      const defined = new Set([...src.matchAll(/^local function ([A-Za-z_]\w*)\(/gm)].map((m) => m[1]));
      const left = new Set([...shaken.matchAll(/^local function ([A-Za-z_]\w*)\(/gm)].map((m) => m[1]));
      expect(left.size, name).toBeLessThan(defined.size);
      // Every call of a function the shared chunks define is to one the shaken script still defines.
      for (const call of shaken.matchAll(/([A-Za-z_]\w*)\(/g)) {
        if (defined.has(call[1]!)) expect(left.has(call[1]!), `${name} calls ${call[1]}`).toBe(true);
      }
    }
  });
});
