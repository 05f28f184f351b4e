/**
 * `redisfs`: mount a redisfs filesystem. Parses and validates (args.ts), then mounts in the
 * foreground (run.ts) or through a detached child (daemon.ts). Errors are one line on stderr;
 * exit code 0 after a clean unmount, 1 on failure, 2 on a usage error. `redisfs fsck …` checks
 * a filesystem instead (fsck.ts), with e2fsck's exit codes; `redisfs upgrade …` converts a
 * layout-1 filesystem to layout 2 (upgrade.ts).
 */
import { hideBin } from 'yargs/helpers';
import { exitCodeOf, scrubSecrets, secretsOfCommandLine } from '@redisfs/cli-common';
import { parseMountArgs } from './args.js';
import { runFsckCommand } from './fsck.js';
import { runUpgradeCommand, terminalProgress } from './upgrade.js';
import { reportToParent, startDaemon } from './daemon.js';
import { messageOf, runMount, type Output } from './run.js';
import { runServerCommand } from './server.js';
import { runStatusCommand } from './status.js';

async function main(args: string[]): Promise<number> {
  // Known before parsing, so that even a yargs error line cannot carry a password.
  const secrets = secretsOfCommandLine(args);
  const io: Output = {
    out: (line) => process.stdout.write(`${scrubSecrets(line, secrets)}\n`),
    err: (line) => process.stderr.write(`${scrubSecrets(line, secrets)}\n`),
  };
  // `redisfs fsck …`: a command of its own, with e2fsck's exit codes.
  if (args[0] === 'fsck') return runFsckCommand(args.slice(1), io);
  // `redisfs server status|stop`: the private Redis; `redisfs status`: this host's mounts.
  if (args[0] === 'server') return runServerCommand(args.slice(1), io);
  if (args[0] === 'status') return runStatusCommand(args.slice(1), io);
  if (args[0] === 'upgrade') {
    const progress = process.stderr.isTTY ? terminalProgress((text) => process.stderr.write(scrubSecrets(text, secrets))) : undefined;
    return runUpgradeCommand(args.slice(1), { ...io, progress });
  }
  try {
    const command = await parseMountArgs(args);
    if (command.kind === 'done') return 0;
    const { config } = command;
    if (!config.daemon) return await runMount(config, io);
    const outcome = await startDaemon(config, process.argv[1] ?? '');
    if (!outcome.ok) {
      io.err(`redisfs: ${outcome.message}`);
      return outcome.exitCode;
    }
    io.out(`mounted ${config.prefix} at ${config.mountpoint} (pid ${outcome.pid})`);
    return 0;
  } catch (err) {
    const message = scrubSecrets(messageOf(err), secrets);
    io.err(`redisfs: ${message}`);
    await reportToParent({ type: 'error', message, exitCode: exitCodeOf(err) });
    return exitCodeOf(err);
  }
}

const code = await main(hideBin(process.argv));
process.exitCode = code;
// Let stdout drain, but do not wait forever on a handle a native module may leave open.
setTimeout(() => process.exit(code), 2000).unref();
