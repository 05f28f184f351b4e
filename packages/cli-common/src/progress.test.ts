import { describe, expect, it, vi } from 'vitest';
import { createProgress, formatDuration, formatElapsed, formatRate, stderrProgress, type ProgressOptions } from './progress.js';

/** A display on a fake clock, and what it wrote. */
function harness(options: Partial<ProgressOptions> & { terminal: boolean }) {
  let t = 1_000_000;
  const written: string[] = [];
  const progress = createProgress('job', { write: (text) => written.push(text), now: () => t, ...options });
  return {
    progress,
    written,
    /** Moves the clock to `ms` after the start. */
    at(ms: number) {
      t = 1_000_000 + ms;
    },
  };
}

describe('progress on a terminal', () => {
  it('redraws one line in place, at most every 100 ms, and clears it at the end', () => {
    const h = harness({ terminal: true });
    h.progress.update({ phase: 'copying', done: 10, total: 1000, unit: 'inodes' });
    expect(h.written).toEqual([]); // nothing during the first half second
    h.at(1000);
    h.progress.update({ phase: 'copying', done: 100, total: 1000, unit: 'inodes' });
    h.at(1050);
    h.progress.update({ phase: 'copying', done: 105, total: 1000, unit: 'inodes' }); // within 100 ms: not drawn
    h.at(2000);
    h.progress.update({ phase: 'copying', done: 200, total: 1000, unit: 'inodes' });
    h.progress.finish();
    h.progress.update({ phase: 'copying', done: 300, total: 1000, unit: 'inodes' }); // after the end: ignored
    expect(h.written).toEqual([
      '\r\x1b[Kjob: copying: 100/1000 inodes (10%), 100 inodes/s, 9 s left',
      '\r\x1b[Kjob: copying: 200/1000 inodes (20%), 100 inodes/s, 8 s left',
      '\r\x1b[K',
    ]);
  });

  it('shows nothing, and clears nothing, for a job done within half a second', () => {
    const h = harness({ terminal: true });
    h.progress.update({ phase: 'copying', done: 10, unit: 'inodes' });
    h.at(400);
    h.progress.update({ phase: 'copying', done: 20, unit: 'inodes' });
    h.progress.finish();
    expect(h.written).toEqual([]);
  });

  it('cuts the line to the terminal width, and clears it when the job fails', () => {
    const h = harness({ terminal: true, columns: () => 20 });
    h.at(1000);
    h.progress.update({ phase: 'copying', done: 100, total: 1000, unit: 'inodes' });
    h.progress.abort();
    expect(h.written).toEqual(['\r\x1b[Kjob: copying: 100/1', '\r\x1b[K']);
  });
});

describe('progress as plain lines', () => {
  it('prints nothing at all for a job done within 2 s', () => {
    const h = harness({ terminal: false });
    for (let ms = 0; ms < 2000; ms += 10) {
      h.at(ms);
      h.progress.update({ phase: 'metadata', done: ms, total: 5000, unit: 'inodes' });
    }
    h.progress.finish();
    expect(h.written).toEqual([]);
  });

  it('prints a line after 2 s, then every 5 s and at phase changes (a second apart at least), then a last line', () => {
    const h = harness({ terminal: false });
    // 100 updates a second for 14 s: 1 000 inodes a second, then a phase of blocks.
    for (let ms = 0; ms <= 12_000; ms += 10) {
      h.at(ms);
      h.progress.update({ phase: 'metadata', done: ms, total: 20_000, unit: 'inodes' });
    }
    for (let ms = 12_010; ms <= 14_000; ms += 10) {
      h.at(ms);
      h.progress.update({ phase: 'blocks', done: (ms - 12_000) * 2, unit: 'blocks' });
    }
    h.at(14_500);
    h.progress.finish();
    expect(h.written).toEqual([
      'job: metadata: 2000/20000 inodes (10%), 1000 inodes/s, 18 s left, 2.0 s elapsed\n',
      'job: metadata: 7000/20000 inodes (35%), 1000 inodes/s, 13 s left, 7.0 s elapsed\n',
      'job: metadata: 12000/20000 inodes (60%), 1000 inodes/s, 8 s left, 12 s elapsed\n',
      // The phase changed 10 ms after the last line: its line waits a second.
      'job: blocks: 2000 blocks, 2000 blocks/s, 13 s elapsed\n',
      'job: finished in 15 s\n',
    ]);
  });

  it('says nothing more when the job fails (the error line follows)', () => {
    const h = harness({ terminal: false });
    h.at(3000);
    h.progress.update({ phase: 'copying', done: 5, unit: 'inodes' });
    h.progress.abort();
    expect(h.written).toEqual(['job: copying: 5 inodes, 1.7 inodes/s, 3.0 s elapsed\n']);
  });
});

describe('REDISFS_PROGRESS', () => {
  it('=always shows a short job from the start, a line at each phase; =off shows nothing', () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((text) => (written.push(String(text)), true));
    try {
      for (const mode of ['always', 'off']) {
        const progress = stderrProgress('job', (text) => text.replace('secret', '***'), { REDISFS_PROGRESS: mode });
        progress.update({ phase: 'metadata', done: 0, total: 9, unit: 'inodes' });
        progress.update({ phase: 'blocks secret', done: 0, unit: 'blocks' });
        progress.finish();
      }
    } finally {
      spy.mockRestore();
    }
    if (process.stderr.isTTY !== true) {
      expect(written.join('')).toMatch(
        /^job: metadata: 0\/9 inodes \(0%\), \d\.\d s elapsed\njob: blocks \*\*\*: 0 blocks, \d\.\d s elapsed\njob: finished in \d\.\d s\n$/,
      );
    } else {
      expect(written[0]).toBe('\r\x1b[Kjob: metadata: 0/9 inodes (0%)');
      expect(written.at(-1)).toBe('\r\x1b[K');
    }
  });
});

describe('rate and time left', () => {
  it('measure the recent past of the current phase', () => {
    const h = harness({ terminal: true, redrawMs: 0 });
    // 10 s at 100 a second, then 10 s at 1 000 a second: after 5 s of the faster pace, the rate is that pace.
    let done = 0;
    for (let ms = 100; ms <= 20_000; ms += 100) {
      done += ms <= 10_000 ? 10 : 100;
      h.at(ms);
      h.progress.update({ phase: 'copying', done, total: 20_000, unit: 'keys' });
    }
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: copying: 11000/20000 keys (55%), 1000 keys/s, 9 s left');
  });

  it('start afresh at a new phase, which began when told with done 0, else when the previous one last reported', () => {
    const h = harness({ terminal: true, redrawMs: 0 });
    h.at(1000);
    h.progress.update({ phase: 'metadata', done: 50_000, total: 50_000, unit: 'inodes' });
    h.at(1500);
    h.progress.update({ phase: 'blocks', done: 100, total: 1000, unit: 'blocks' });
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: blocks: 100/1000 blocks (10%), 200 blocks/s, 5 s left');
    // Told at its start (done 0), a phase begins then: no rate until it moves.
    h.at(4000);
    h.progress.update({ phase: 'maps', done: 0, total: 50, unit: 'maps' });
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: maps: 0/50 maps (0%)');
    h.at(4500);
    h.progress.update({ phase: 'maps', done: 10, total: 50, unit: 'maps' });
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: maps: 10/50 maps (20%), 20 maps/s, 2 s left');
  });

  it('leave out the time left while the rate is unknown or nil, and the total once it is passed', () => {
    const h = harness({ terminal: true, redrawMs: 0, quietMs: 0 });
    h.progress.update({ phase: 'copying', done: 0, total: 100, unit: 'keys' });
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: copying: 0/100 keys (0%)'); // no time has passed: no rate
    h.at(1000);
    h.progress.update({ phase: 'copying', done: 0, total: 100, unit: 'keys' });
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: copying: 0/100 keys (0%), 0.0 keys/s');
    h.at(2000);
    h.progress.update({ phase: 'copying', done: 120, total: 100, unit: 'keys' }); // an estimate, passed
    expect(h.written.at(-1)).toBe('\r\x1b[Kjob: copying: 120 keys, 60 keys/s');
  });

  it('are written for a human', () => {
    expect([0, 0.2, 42, 59.5, 60, 185, 3599, 3600, 7620].map(formatDuration)).toEqual([
      '0 s', '1 s', '42 s', '1 min 00 s', '1 min 00 s', '3 min 05 s', '59 min 59 s', '1 h 00 min', '2 h 07 min',
    ]);
    expect([0.25, 2.5, 9.96, 12.4, 850].map(formatRate)).toEqual(['0.3', '2.5', '10.0', '12', '850']);
    expect([0, 420, 9949, 9950, 14_500, 61_000].map(formatElapsed)).toEqual(['0.0 s', '0.4 s', '9.9 s', '10 s', '15 s', '1 min 01 s']);
  });
});
