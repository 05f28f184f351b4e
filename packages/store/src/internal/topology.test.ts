import { describe, expect, it } from 'vitest';
import { isTransient, keySlot } from './topology.js';

describe('keySlot', () => {
  it('is the slot Redis Cluster gives a key (CLUSTER KEYSLOT)', () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('bar')).toBe(5061);
    expect(keySlot('somekey')).toBe(11058);
    expect(keySlot('hello')).toBe(866);
  });

  it('hashes only a non-empty {tag}: a family\'s metadata shares one slot, its blocks do not', () => {
    expect(keySlot('{skx}:sb')).toBe(keySlot('skx'));
    expect(keySlot('{skx}@mon:in:0')).toBe(keySlot('{skx}#rc'));
    expect(keySlot('{}x')).toBe(keySlot('{}x')); // empty tag: the whole key
    expect(keySlot('{}:a')).not.toBe(keySlot('a'));
    const blockSlots = new Set(Array.from({ length: 64 }, (_, i) => keySlot(`skx:b:${i}`)));
    expect(blockSlots.size).toBeGreaterThan(60);
  });
});

describe('isTransient', () => {
  it('is true for what a failover or resharding answers, false for real errors', () => {
    for (const m of ['CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing of slot',
      'READONLY You can\'t write against a read only replica.', 'LOADING Redis is loading the dataset in memory',
      'The client is offline', 'Socket closed unexpectedly', 'connect ECONNREFUSED 127.0.0.1:7000']) {
      expect(isTransient(new Error(m)), m).toBe(true);
    }
    for (const m of ['NOPERM this user has no permissions', 'OOM command not allowed', 'RFS:ENOENT', 'WRONGTYPE Operation']) {
      expect(isTransient(new Error(m)), m).toBe(false);
    }
    expect(isTransient('CLUSTERDOWN')).toBe(false);
  });
});
