/**
 * `redisfs server status|start|stop`: the private, per-user redis-server that redisfs commands
 * told no Redis address use when nothing answers on 127.0.0.1:6379. The service itself (start on
 * demand, idle rule, keeper) is @redisfs/cli-common's private-redis; this parses, prints, and maps
 * outcomes to exit codes: status as LSB init scripts do (0 running, 3 not running).
 */
import { z } from 'zod';
import {
  DEFAULT_REDIS,
  EXIT_FAILURE,
  EXIT_OK,
  IDLE_ENV,
  UsageError,
  ensurePrivateRedis,
  exitCodeOf,
  pingRedis,
  privateRedisDir,
  privateRedisStatus,
  stopPrivateRedis,
  type KeeperState,
  type PrivateRedisStatus,
  type RunningStatus,
} from '@redisfs/cli-common';
import type { Output } from './run.js';
import { VERSION, subcommandParser } from './subcommand-parser.js';

/** `redisfs server status` when the server does not run (LSB: program is not running). */
export const EXIT_NOT_RUNNING = 3;

const ACTIONS = ['status', 'start', 'stop'] as const;
type Action = (typeof ACTIONS)[number];

const argsSchema = z.object({
  action: z.enum(ACTIONS, { error: (issue) => (issue.input === undefined ? 'name what to do: status, start or stop' : `unknown command '${String(issue.input)}': use status, start or stop`) }),
  extra: z.array(z.unknown()).max(0, 'redisfs server takes one command (status, start or stop)'),
});

async function parseServerArgs(args: string[]): Promise<Action | undefined> {
  const argv = await subcommandParser(
    'server',
    args,
    '$0 <status|start|stop>\n\n' +
      'The private redis-server: redisfs commands told no Redis address (no --url, --host/--port or --socket) ' +
      'use it when nothing answers on 127.0.0.1:6379. It is started on demand, shared by all of them, ' +
      'keeps its data (append-only file) in $XDG_DATA_HOME/redisfs/redis (default ~/.local/share/redisfs/redis), ' +
      'and listens only on a unix socket there.',
  )
    .command('status', 'where it runs, its data, uptime, memory, persistence and clients')
    .command('start', 'start it now (nothing to do when it runs)')
    .command('stop', 'stop it (Redis saves first), unless mounts or commands use it')
    .epilogue(
      `It stops by itself once no client (mount or command) has been connected for 10 minutes; ${IDLE_ENV}=N ` +
        'sets that time in seconds for a server started from then on (0: never). ' +
        'Exit codes: status 0 running, 3 not running; start 0 running; stop 0 stopped or not running, ' +
        '1 refused while clients are connected; 1 on any failure, 2 on a usage error.',
    )
    .strictOptions()
    .help()
    .version(VERSION)
    .parseAsync();
  if (argv.help || argv.version) return undefined;
  const parsed = argsSchema.safeParse({ action: argv._[0], extra: argv._.slice(1) });
  // Positionals, not flags: zod's message as it is (firstIssueMessage would name a --flag).
  if (!parsed.success) throw new UsageError(`${parsed.error.issues[0]?.message ?? 'invalid arguments'} (see redisfs server --help)`);
  return parsed.data.action;
}

/** Runs `redisfs server <args>` (the arguments after `server`) and returns the exit code. */
export async function runServerCommand(args: string[], io: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const action = await parseServerArgs(args);
    if (action === undefined) return EXIT_OK;
    switch (action) {
      case 'status':
        return await showStatus(io, env);
      case 'start':
        return await start(io, env);
      case 'stop':
        return await stop(io, env);
    }
  } catch (err) {
    io.err(`redisfs server: ${err instanceof Error ? err.message : String(err)}`);
    return exitCodeOf(err);
  }
}

async function showStatus(io: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const status = await privateRedisStatus({ env });
  for (const line of formatServerStatus(status)) io.out(line);
  await noteDefaultServer(io);
  return status.running ? EXIT_OK : EXIT_NOT_RUNNING;
}

async function start(io: Output, env: NodeJS.ProcessEnv): Promise<number> {
  await using server = await ensurePrivateRedis({ env });
  io.out(
    `${server.started ? 'started the' : 'the'} private redis-server ${server.started ? '' : 'runs '}` +
      `(pid ${server.serverPid ?? '?'}, socket ${server.socket}, data in ${server.dataDir}); ${idleRule(server.idleSeconds)}`,
  );
  await noteDefaultServer(io);
  return EXIT_OK;
}

async function stop(io: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const result = await stopPrivateRedis({ env });
  switch (result.outcome) {
    case 'not-running':
      io.out('the private redis-server is not running');
      return EXIT_OK;
    case 'refused':
      io.err(
        `redisfs server: not stopped: ${result.clients} ${result.clients === 1 ? 'client uses' : 'clients use'} the private ` +
          'redis-server (mounts or commands); unmount and finish them first',
      );
      return EXIT_FAILURE;
    case 'stopped':
      io.out(`stopped the private redis-server (data kept in ${privateRedisDir(env)})`);
      return EXIT_OK;
  }
}

/** Commands told no address use 127.0.0.1:6379 when something answers there: say so. */
async function noteDefaultServer(io: Output): Promise<void> {
  if ((await pingRedis(DEFAULT_REDIS)) === 'none') return;
  io.out(`note: something answers on ${DEFAULT_REDIS.host}:${DEFAULT_REDIS.port}: commands told no Redis address use it, not this server`);
}

/** The lines of `redisfs server status`. */
export function formatServerStatus(s: PrivateRedisStatus, now = Date.now()): string[] {
  if (!s.running) {
    const head = s.keeper
      ? `private redis-server: ${s.keeper.state} (keeper pid ${s.keeper.keeperPid}; log: ${s.logFile})`
      : 'private redis-server: not running';
    return [
      head,
      `data:        ${s.dataDir}`,
      'it starts when a redisfs command told no Redis address needs it, or with: redisfs server start',
    ];
  }
  return [
    `private redis-server: ${s.loading ? 'loading its data' : 'running'} (pid ${s.serverPid}; ${keeperText(s.keeper)})`,
    `socket:      ${s.socket}`,
    `data:        ${s.dataDir}`,
    `log:         ${s.logFile}`,
    `uptime:      ${describeDuration(s.uptimeSeconds)}`,
    `memory:      ${describeBytes(s.usedMemoryBytes)} used`,
    `persistence: ${persistenceText(s)}`,
    `clients:     ${s.clients} connected`,
    `idle rule:   ${s.keeper ? idleRule(s.keeper.idleSeconds) : 'none while no keeper runs: stop it with redisfs server stop'}${idleNow(s.keeper, now)}`,
  ];
}

function keeperText(keeper: KeeperState | undefined): string {
  if (!keeper) return 'no keeper: the next redisfs command that uses it adopts it';
  return `keeper pid ${keeper.keeperPid}${keeper.state === 'running' ? '' : `, ${keeper.state}`}`;
}

function persistenceText(s: RunningStatus): string {
  const aof = s.aofEnabled ? `AOF on, last write ${s.aofLastWriteStatus}` : 'AOF off';
  const rdb = s.rdbLastSaveTime > 0 ? `last RDB save ${new Date(s.rdbLastSaveTime * 1000).toISOString()} (${s.rdbLastSaveStatus})` : 'no RDB save yet';
  return `${aof}; ${rdb}, ${s.changesSinceLastSave} ${s.changesSinceLastSave === 1 ? 'change' : 'changes'} since`;
}

function idleRule(idleSeconds: number): string {
  return idleSeconds > 0 ? `stops after ${describeDuration(idleSeconds, true)} with no client` : 'never stops when idle';
}

/** ` (idle for 3 min)` when the keeper has seen no client lately. */
function idleNow(keeper: KeeperState | undefined, now: number): string {
  if (!keeper || keeper.idleSince === null || keeper.idleSince === undefined) return '';
  return ` (no client for ${describeDuration(Math.max(0, Math.round((now - keeper.idleSince) / 1000)))})`;
}

/** "45 s", "12 min", "3 h 05 min", "2 d 4 h"; in words ("10 minutes") for a rule. */
export function describeDuration(seconds: number, words = false): string {
  if (words) {
    const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
    if (seconds % 3600 === 0) return unit(seconds / 3600, 'hour');
    if (seconds % 60 === 0) return unit(seconds / 60, 'minute');
    return unit(seconds, 'second');
  }
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')} min`;
  return `${Math.floor(seconds / 86_400)} d ${Math.floor((seconds % 86_400) / 3600)} h`;
}

function describeBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? value : value.toFixed(1)} ${units[i]}`;
}
