import { describe, expect, it } from 'vitest';
import { parseRedisUrl, redactRedisUrl } from './redis-url.js';

describe('parseRedisUrl', () => {
  it('reads one server, with credentials and a database', () => {
    expect(parseRedisUrl('redis://alice:p%40ss@db.example:6380/2')).toEqual({
      sentinel: false, tls: false, username: 'alice', password: 'p@ss',
      hosts: [{ host: 'db.example', port: 6380 }], database: 2, masterName: undefined,
    });
    expect(parseRedisUrl('rediss://[::1]').hosts).toEqual([{ host: '::1', port: 6379 }]);
  });

  it('reads cluster seeds and sentinels, with their default ports', () => {
    expect(parseRedisUrl('redis://a:7000,b,[::1]:7002').hosts).toEqual([
      { host: 'a', port: 7000 }, { host: 'b', port: 6379 }, { host: '::1', port: 7002 },
    ]);
    const s = parseRedisUrl('redis+sentinel://:pw@s1,s2:5000/my%20master');
    expect(s).toMatchObject({ sentinel: true, password: 'pw', masterName: 'my master' });
    expect(s.hosts).toEqual([{ host: 's1', port: 26379 }, { host: 's2', port: 5000 }]);
  });

  it('refuses malformed addresses without repeating them', () => {
    for (const url of ['http://u:s3cret@h', 'redis://u:s3cret@', 'redis://u:s3cret@h:99999', 'redis://u:s3cret@h/x',
      'redis+sentinel://u:s3cret@h:1', 'redis://u:s3cret@a,,b']) {
      expect(() => parseRedisUrl(url), url).toThrow();
      try {
        parseRedisUrl(url);
      } catch (err) {
        expect((err as Error).message).not.toContain('s3cret');
      }
    }
  });

  it('redacts passwords, keeping everything else', () => {
    expect(redactRedisUrl('redis://u:s3cret@a:1,b:2/3')).toBe('redis://u:***@a:1,b:2/3');
    expect(redactRedisUrl('rediss+sentinel://:s3cret@s:1/m')).toBe('rediss+sentinel://:***@s:1/m');
    expect(redactRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactRedisUrl('nonsense s3cret')).toBe('<invalid url>');
  });
});
