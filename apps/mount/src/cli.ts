/**
 * `redisfs`: mount a redisfs filesystem. Parses and validates (args.ts), then mounts in the
 * foreground (run.ts) or through a detached child (daemon.ts). Errors are one line on stderr;
 * exit code 0 after a clean unmount, 1 on failure, 2 on a usage error. `redisfs fsck …` checks
 * a filesystem instead (fsck.ts), with e2fsck's exit codes; `redisfs upgrade …` converts a
 * layout-1 or layout-2 filesystem to layout 3 (upgrade.ts).
 */
import { hideBin } from 'yargs/helpers';
import { endQuietlyOnClosedOutput, exitCodeOf, resolveDefaultRedis, scrubSecrets, secretsOfCommandLine, stderrProgress } from '@redisfs/cli-common';
import { parseMountArgs } from './args.js';
import { secretsOfFuseArgs } from './fuse-args.js';
import { runFsckCommand } from './fsck.js';
import { runUpgradeCommand } from './upgrade.js';
import { isDaemonChild, readChildEnv, reportToParent, startDaemon } from './daemon.js';
import { messageOf, runMount, type Output } from './run.js';
import { runServerCommand } from './server.js';
import { runStatusCommand } from './status.js';

async function main(args: string[]): Promise<number> {
  // A --daemon child gets the Redis URL from its parent, not from its environment (daemon.ts).
  let env: NodeJS.ProcessEnv;
  try {
    env = await readChildEnv();
  } catch (err) {
    process.stderr.write(`redisfs: ${messageOf(err)}\n`);
    return exitCodeOf(err);
  }
  // Known before parsing, so that even a yargs error line cannot carry a password.
  // secretsOfFuseArgs: also SOURCE, -o url=… and the URLs of several hosts.
  const secrets = [...secretsOfCommandLine(args, env), ...secretsOfFuseArgs(args)];
  const io: Output = {
    out: (line) => process.stdout.write(`${scrubSecrets(line, secrets)}\n`),
    err: (line) => process.stderr.write(`${scrubSecrets(line, secrets)}\n`),
    scrub: (text) => scrubSecrets(text, secrets),
  };
  // Progress of fsck and upgrade on stderr: a line redrawn on a terminal, else plain lines.
  const progress = (label: string) => stderrProgress(label, (text) => scrubSecrets(text, secrets));
  // The commands that print and end (not a mount, which must unmount before it ends).
  if (['fsck', 'server', 'status', 'upgrade'].includes(args[0] ?? '')) endQuietlyOnClosedOutput();
  // `redisfs fsck …`: a command of its own, with e2fsck's exit codes.
  if (args[0] === 'fsck') return runFsckCommand(args.slice(1), { ...io, progress });
  // `redisfs server status|stop`: the private Redis; `redisfs status`: this host's mounts.
  if (args[0] === 'server') return runServerCommand(args.slice(1), io);
  if (args[0] === 'status') return runStatusCommand(args.slice(1), io);
  if (args[0] === 'upgrade') return runUpgradeCommand(args.slice(1), { ...io, progress });
  try {
    const command = await parseMountArgs(args, env);
    if (command.kind === 'done') return 0;
    const { config } = command;
    secrets.push(...secretsOfFuseArgs([config.url])); // a password from -o password_file
    // Told no address: 127.0.0.1:6379, or else the private server, started now if need be and held
    // while this process runs; resolved before --daemon so that the child is given its socket.
    await using privateRedis = config.url === undefined && config.socket === undefined ? await resolveDefaultRedis({ env }) : undefined;
    const target = privateRedis ? { ...config, socket: privateRedis.socket } : config;
    const onServer = privateRedis ? ` on the private redis-server (data in ${privateRedis.dataDir})` : '';
    if (!config.daemon) return await runMount(target, io, onServer);
    const outcome = await startDaemon(target, process.argv[1] ?? '');
    if (!outcome.ok) {
      io.err(`redisfs: ${outcome.message}`);
      return outcome.exitCode;
    }
    io.out(`mounted ${config.prefix} at ${config.mountpoint} (pid ${outcome.pid})${onServer}, log: ${outcome.log}`);
    return 0;
  } catch (err) {
    const message = scrubSecrets(messageOf(err), secrets);
    // A daemon child's stderr is its log file, where runMount logged the failure already; the
    // parent prints the line it reports.
    if (!isDaemonChild()) io.err(`redisfs: ${message}`);
    await reportToParent({ type: 'error', message, exitCode: exitCodeOf(err) });
    return exitCodeOf(err);
  }
}

const code = await main(hideBin(process.argv));
process.exitCode = code;
// Let stdout drain, but do not wait forever on a handle a native module may leave open.
setTimeout(() => process.exit(code), 2000).unref();
