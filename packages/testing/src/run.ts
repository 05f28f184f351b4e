/** Running real tools (cp, tar, diff, dd, stat, node CLIs) the way a user would, output captured. */
import { execFile } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the tool (SIGKILL) after this long; 60 s unless told. */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit code; null when the tool was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd args` without a shell and resolves with its exit code and output, whatever the code.
 * Rejects only when the tool cannot be started at all (e.g. not installed).
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 60_000,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code === 'string') {
          reject(new Error(`cannot run ${cmd}: ${error.message}`, { cause: error }));
          return;
        }
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        const signal = error?.signal ?? null;
        resolve({ code, signal: signal as NodeJS.Signals | null, stdout, stderr });
      },
    );
  });
}

/** Runs a tool that must succeed; rejects with its stderr otherwise. Resolves with stdout. */
export async function runOk(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    const how = result.code === null ? `was killed by ${result.signal}` : `exited ${result.code}`;
    throw new Error(`${[cmd, ...args].join(' ')} ${how}:\n${result.stderr || result.stdout}`);
  }
  return result.stdout;
}
