/**
 * The bench's guardian: a detached process (its own session, so a terminal's Ctrl-C does not reach
 * it) that outlives the bench. The bench writes to its stdin, one JSON line each, what it has
 * started (`{"add":"3","what":…,"pids":[…],"mounts":[…],"dirs":[…]}`) and what it has stopped
 * (`{"done":"3"}`). When stdin ends (the bench exited, however: done, crashed, or SIGKILLed by the
 * tsx CLI, which kills a child that does not acknowledge a signal within 30 ms, as one inside a
 * blocking workload cannot), whatever is not done is stopped here, newest first: SIGTERM to its
 * processes (then SIGKILL after 10 s), `fusermount -uz` of its mounts, its directories removed.
 * A pid is signalled only while it is the same process (its start time in /proc matches).
 *
 *   node --import tsx bench/src/guardian.ts   (teardown.ts starts it)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

interface Entry {
  what: string;
  pids: { pid: number; start: string }[];
  mounts: string[];
  dirs: string[];
}

type Message = { add: string; what: string; pids?: number[]; mounts?: string[]; dirs?: string[] } | { done: string };

const TERM_GRACE_MS = 10_000;
const entries = new Map<string, Entry>();

function log(line: string): void {
  process.stderr.write(`[bench guardian] ${line}\n`);
}

/** The process's start time (field 22 of /proc/PID/stat), or undefined once it is gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function mounted(dir: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
  } catch {
    return false;
  }
}

function signal(pids: Entry['pids'], sig: NodeJS.Signals): void {
  for (const { pid, start } of pids) {
    if (startTime(pid) !== start) continue;
    try {
      process.kill(pid, sig);
    } catch {
      // gone meanwhile
    }
  }
}

async function stopEntry(e: Entry): Promise<void> {
  signal(e.pids, 'SIGTERM');
  const deadline = Date.now() + TERM_GRACE_MS;
  while (e.pids.some((p) => startTime(p.pid) === p.start) && Date.now() < deadline) await sleep(100);
  signal(e.pids, 'SIGKILL');
  for (const dir of e.mounts) {
    for (const cmd of ['fusermount', 'fusermount3']) {
      if (!mounted(dir)) break;
      spawnSync(cmd, ['-uz', dir], { stdio: 'ignore' });
    }
  }
  for (const dir of e.dirs) {
    if (mounted(dir)) log(`left ${dir}: still mounted`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

function onMessage(m: Message): void {
  if ('done' in m) {
    entries.delete(m.done);
    return;
  }
  const pids = (m.pids ?? []).flatMap((pid) => {
    const start = startTime(pid);
    return start ? [{ pid, start }] : [];
  });
  entries.set(m.add, { what: m.what, pids, mounts: m.mounts ?? [], dirs: m.dirs ?? [] });
}

let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buffered += chunk;
  let nl: number;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim()) onMessage(JSON.parse(line) as Message);
  }
});
process.stdin.on('error', () => undefined);
process.stdin.once('close', () => {
  void (async () => {
    const left = [...entries.values()].reverse();
    if (left.length === 0) return;
    log(`the bench ended without stopping ${left.map((e) => e.what).join(', ')}: stopping them`);
    for (const e of left) await stopEntry(e);
    log('done');
  })();
});
