import { describe, expect, it } from 'vitest';
import { URL_ENV } from './redis-target.js';
import { scrubSecrets, secretsOfCommandLine, secretsOfUrl } from './secrets.js';

describe('scrubSecrets', () => {
  it('hides URL passwords and known secrets', () => {
    expect(scrubSecrets('cannot reach redis://bob:pa55word@h:1/0 now')).toBe('cannot reach redis://bob:***@h:1/0 now');
    expect(scrubSecrets('rediss://:x@h')).toBe('rediss://:***@h');
    expect(scrubSecrets('auth failed for pa55word', secretsOfUrl('redis://u:pa55word@h'))).toBe('auth failed for ***');
    expect(secretsOfUrl('redis://u:p%40ss@h')).toEqual(['p%40ss', 'p@ss']);
  });
});

describe('secretsOfCommandLine', () => {
  it(`finds the passwords of --url, --url= and ${URL_ENV}`, () => {
    const args = ['--url', 'redis://:first@h', '--url=redis://u:second@h', '--mount', '/mnt'];
    expect(secretsOfCommandLine(args, { [URL_ENV]: 'rediss://:third@h' })).toEqual(['first', 'second', 'third']);
    expect(secretsOfCommandLine(['--port', '1'], {})).toEqual([]);
  });
});
