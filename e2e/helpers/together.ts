/**
 * Runs programs side by side and starts them together: each prints "ready" and waits for a line
 * on stdin, which goes to all of them once all are ready (two hosts racing on the same names).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { OutputTail, exited, own, stopChild, waitFor, type RunResult } from '@redisfs/testing';

/** One program: argv[0] and its arguments. */
export interface TogetherJob {
  command: string;
  args: string[];
}

/** Resolves with each program's exit and output (stdout without its "ready" line). */
export async function runTogether<const J extends readonly TogetherJob[]>(jobs: J): Promise<{ [K in keyof J]: RunResult }> {
  const children: ChildProcess[] = jobs.map(({ command, args }) => own(spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })));
  try {
    const outs = children.map((c) => new OutputTail(1 << 20).follow(c.stdout!));
    const errs = children.map((c) => new OutputTail().follow(c.stderr!));
    const ends = children.map((c) => exited(c));
    await waitFor(() => outs.every((o) => o.toString().startsWith('ready\n')), {
      timeoutMs: 30_000,
      what: 'the programs to be ready',
      bail: () => {
        const i = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
        return i < 0 ? undefined : new Error(`program ${i} ended before starting: ${errs[i]}`);
      },
    });
    for (const c of children) c.stdin!.end('go\n');
    const results: RunResult[] = [];
    for (const [i, end] of ends.entries()) {
      const { code, signal } = await end;
      results.push({ code, signal, stdout: outs[i]!.toString().replace(/^ready\n/, ''), stderr: errs[i]!.toString() });
    }
    return results as { [K in keyof J]: RunResult };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) await stopChild(c, 'SIGKILL', 0);
  }
}
