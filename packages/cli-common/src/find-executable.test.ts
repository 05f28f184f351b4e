import { describe, expect, it } from 'vitest';
import { findExecutable } from './index.js';

describe('findExecutable', () => {
  it('searches PATH, and the standard directories when PATH is unset (mount(8) runs helpers with no PATH)', () => {
    expect(findExecutable('sh', { PATH: '/nonexistent' })).toBeUndefined();
    expect(findExecutable('sh', {})).toMatch(/^\/(usr\/)?(s?bin)\/sh$/);
    expect(findExecutable('no-such-command-here', {})).toBeUndefined();
  });
});
