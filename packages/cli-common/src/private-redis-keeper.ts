/**
 * The keeper of the private redis-server: a small detached process (own session, output appended
 * to the server's log), one per data directory, started by ensurePrivateRedis (private-redis.ts).
 * It runs redis-server as its child (or adopts one left running by a keeper that died), answers
 * the commands that use it on its abstract socket (private-redis-layout.ts), and every few seconds
 * counts the server's clients (CLIENT LIST, over the unix socket). When no client and no lease
 * has been there for the idle time, it sends SHUTDOWN (Redis flushes its AOF and saves) and exits
 * once the server is gone. SIGTERM stops the server at once, clients or not.
 *
 * Command line: --data-dir DIR --binary PATH --idle-seconds N. Tells its starter, over IPC when
 * there is a channel, `{ type: 'ready' }`, `{ type: 'busy' }` (another keeper holds the
 * directory) or `{ type: 'error', message }`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { pingRedis } from './local-redis.js';
import {
  KEEPER_CLIENT_NAME,
  NOT_USERS,
  describeSeconds,
  isAlive,
  keeperAddress,
  privateRedisPaths,
  type KeeperReply,
  type KeeperState,
  type PrivateRedisPaths,
  type StopAnswer,
} from './private-redis-layout.js';
import { RespClosedError, RespConnection, countClients, parseInfo } from './private-redis-resp.js';

type StarterMessage = { type: 'ready' } | { type: 'busy' } | { type: 'error'; message: string };

const pause = (ms: number) => new Promise((resolvePause) => setTimeout(resolvePause, ms));

class Keeper {
  private state: KeeperState['state'] = 'starting';
  private readonly leases = new Set<Socket>();
  private serverPid: number | undefined;
  private adopted = false;
  private checkedAt: number | undefined;
  private idleSince: number | null = null;
  private child: ChildProcess | undefined;
  private conn: RespConnection | undefined;
  private listener: Server | undefined;
  private checking = false;
  private signalled: NodeJS.Signals | undefined;
  private readonly checkEveryMs: number;

  constructor(
    private readonly paths: PrivateRedisPaths,
    private readonly binary: string,
    private readonly idleSeconds: number,
  ) {
    // Often enough that the idle time is kept to within a quarter of it; at most every 5 s.
    this.checkEveryMs = Math.min(5_000, Math.max(250, (idleSeconds * 1000) / 4));
  }

  /** Runs until the server is gone; returns the exit code. */
  async run(): Promise<number> {
    // From the start: stopped while starting, it takes its redis-server (if any yet) down with it.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => this.onSignal(signal));
    process.on('SIGHUP', () => {});
    if (!(await this.listen())) {
      tell({ type: 'busy' });
      return 0;
    }
    let serverExited: Promise<string>;
    try {
      ({ exited: serverExited } = await this.startServer());
    } catch (err) {
      const message = messageOf(err);
      log(`cannot start the private redis-server: ${message}`);
      tell({ type: 'error', message });
      this.listener?.close();
      return 1;
    }
    await writeFile(this.paths.keeperPidFile, `${process.pid}\n`).catch((err: unknown) => log(`cannot write ${this.paths.keeperPidFile}: ${messageOf(err)}`));
    this.state = 'running';
    this.idleSince = Date.now();
    const idleRule = this.idleSeconds > 0 ? `stops after ${describeSeconds(this.idleSeconds)} with no client` : 'never stops when idle';
    log(`${this.adopted ? 'adopted the running' : 'started'} redis-server (pid ${this.serverPid}) on ${this.paths.socket}; ${idleRule}`);
    tell({ type: 'ready' });
    const timer = setInterval(() => void this.check(), this.checkEveryMs);
    const how = await serverExited;
    clearInterval(timer);
    this.state = 'stopping';
    for (const lease of this.leases) lease.destroy();
    this.listener?.close();
    this.conn?.close();
    await unlink(this.paths.keeperPidFile).catch(() => {});
    log(`redis-server ${how}; keeper exits`);
    return 0;
  }

  /** SIGTERM, SIGINT: stop the server (whatever uses it); while starting, stop starting. */
  private onSignal(signal: NodeJS.Signals): void {
    if (this.state !== 'starting') {
      void this.stop(`${signal} received`);
      return;
    }
    this.signalled ??= signal;
    if (!this.listener) process.exit(0); // not even the lock yet: nothing to undo
    this.child?.kill('SIGTERM'); // Redis saves and exits; startServer then gives up
  }

  /** Takes the data directory's abstract socket: false when another keeper has it. */
  private async listen(): Promise<boolean> {
    const address = await keeperAddress(this.paths.dataDir, true);
    const server = createServer((socket) => this.answer(socket));
    return new Promise((resolveListen, rejectListen) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') resolveListen(false);
        else rejectListen(err);
      });
      server.listen(address, () => {
        this.listener = server;
        resolveListen(true);
      });
    });
  }

  /** Starts redis-server (or adopts a running one); resolves, once it answers PING, with a promise of how it ends. */
  private async startServer(): Promise<{ exited: Promise<string> }> {
    const { socket, dataDir, logFile, serverPidFile } = this.paths;
    let exited: Promise<string> | undefined;
    if ((await pingRedis({ path: socket })) !== 'none') {
      // Left running by a keeper that died (or an older redisfs): a second server on the same AOF would corrupt it.
      this.adopted = true;
    } else {
      if (this.signalled) throw new Error(`${this.signalled} received while starting`);
      if (!this.binary) throw new Error('no redis-server binary to start');
      const child = spawn(
        this.binary,
        [
          '--port', '0',
          '--unixsocket', socket,
          '--unixsocketperm', '700',
          '--dir', dataDir,
          '--appendonly', 'yes',
          '--daemonize', 'no',
          '--pidfile', serverPidFile,
          '--logfile', logFile,
        ],
        { stdio: 'ignore' },
      );
      this.child = child;
      exited = new Promise((resolveExit) => {
        child.once('exit', (code, signal) => resolveExit(signal ? `was killed by ${signal}` : `exited with code ${code}`));
        child.once('error', (err) => resolveExit(`could not run: ${err.message}`));
      });
      this.serverPid = child.pid;
    }
    let ended: string | undefined;
    void exited?.then((how) => (ended = how));
    // No deadline: a large AOF takes as long as it takes to load (the server answers LOADING meanwhile).
    while ((await pingRedis({ path: socket }, 1_000)) !== 'pong') {
      if (this.signalled && !this.child) throw new Error(`${this.signalled} received while starting`);
      if (ended !== undefined) throw new Error(`redis-server ${ended} (see ${logFile})`);
      await pause(100);
    }
    this.conn = await this.connect();
    if (this.adopted) {
      const info = parseInfo(await this.conn.text(['INFO', 'server'], 10_000));
      this.serverPid = Number(info.get('process_id'));
      exited = this.watchAdopted(this.serverPid);
    }
    return { exited: exited ?? Promise.resolve('ended') };
  }

  /** The keeper's own connection, named so that it is not counted as a client. */
  private async connect(): Promise<RespConnection> {
    const conn = await RespConnection.open(this.paths.socket);
    await conn.command(['CLIENT', 'SETNAME', KEEPER_CLIENT_NAME], 10_000);
    return conn;
  }

  /** An adopted server is no child of ours: its end is seen by polling its pid. */
  private async watchAdopted(pid: number): Promise<string> {
    while (isAlive(pid)) await pause(200);
    return 'exited';
  }

  /** One request line in, one JSON line out; an accepted `use` stays open as a lease. */
  private answer(socket: Socket): void {
    socket.setEncoding('utf8');
    let text = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      text += chunk;
      const eol = text.indexOf('\n');
      if (eol < 0) {
        if (text.length > 64) socket.destroy();
        return;
      }
      socket.removeAllListeners('data');
      const request = text.slice(0, eol).trim();
      if (request === 'use' && this.state === 'running') {
        this.leases.add(socket);
        this.idleSince = null;
        socket.once('close', () => {
          this.leases.delete(socket);
        });
        socket.write(`${JSON.stringify(this.reply())}\n`);
        return;
      }
      if (request === 'stop') {
        void this.requestedStop().then((stop) => socket.end(`${JSON.stringify(this.reply(stop))}\n`));
        return;
      }
      socket.end(`${JSON.stringify(this.reply())}\n`);
    });
  }

  private reply(stop?: StopAnswer): KeeperReply {
    const keeper: KeeperState = {
      state: this.state,
      keeperPid: process.pid,
      serverPid: this.serverPid,
      adopted: this.adopted,
      idleSeconds: this.idleSeconds,
      leases: this.leases.size,
      checkedAt: this.checkedAt,
      idleSince: this.idleSince,
    };
    return stop ? { keeper, stop } : { keeper };
  }

  /** The clients other than the keeper and status probes, or undefined when the server cannot be asked. */
  private async countUsers(): Promise<number | undefined> {
    try {
      if (!this.conn?.open) this.conn = await this.connect();
      return countClients(await this.conn.text(['CLIENT', 'LIST'], 10_000), NOT_USERS);
    } catch (err) {
      if (this.state === 'running') log(`cannot count the clients: ${messageOf(err)}`);
      return undefined;
    }
  }

  /** The idle rule, every checkEveryMs. */
  private async check(): Promise<void> {
    if (this.state !== 'running' || this.checking) return;
    this.checking = true;
    try {
      const clients = await this.countUsers();
      if (clients === undefined || this.state !== 'running') return;
      const now = Date.now();
      this.checkedAt = now;
      // Leases are read after the await: one taken meanwhile counts.
      if (clients + this.leases.size > 0) this.idleSince = null;
      else this.idleSince ??= now;
      if (this.idleSeconds > 0 && this.idleSince !== null && now - this.idleSince >= this.idleSeconds * 1000) {
        await this.stop(`no client for ${describeSeconds(this.idleSeconds)}`);
      }
    } finally {
      this.checking = false;
    }
  }

  /** `redisfs server stop`: refused while clients or leases are there. */
  private async requestedStop(): Promise<StopAnswer> {
    if (this.state === 'starting') return { stopping: false, reason: 'starting' };
    if (this.state === 'stopping') return { stopping: true };
    const clients = await this.countUsers();
    if (clients === undefined) return { stopping: false, reason: 'failed', message: 'cannot count the clients of redis-server' };
    // The idle rule may have stopped it meanwhile.
    if ((this.state as KeeperState['state']) === 'stopping') return { stopping: true };
    const users = clients + this.leases.size;
    if (users > 0) return { stopping: false, reason: 'clients', clients: users };
    const failure = await this.stop('redisfs server stop');
    return failure === undefined ? { stopping: true } : { stopping: false, reason: 'failed', message: failure };
  }

  /**
   * SHUTDOWN (Redis flushes the AOF and writes its RDB), decided and sent without yielding so that
   * no lease slips in between. Returns the error when redis-server refuses (then it keeps running
   * and the idle time starts over).
   */
  private async stop(reason: string): Promise<string | undefined> {
    if (this.state === 'stopping') return undefined;
    this.state = 'stopping';
    log(`stopping redis-server: ${reason}`);
    try {
      if (!this.conn) throw new Error('no connection to redis-server');
      await this.conn.command(['SHUTDOWN']);
    } catch (err) {
      if (err instanceof RespClosedError) return undefined; // the server closed it: it is exiting
      const message = messageOf(err);
      log(`redis-server refused to stop: ${message}`);
      this.state = 'running';
      this.idleSince = Date.now();
      return message;
    }
    return undefined;
  }
}

function tell(message: StarterMessage): void {
  if (!process.send || !process.connected) return;
  process.send(message, undefined, {}, () => {
    if (process.connected) process.disconnect();
  });
}

function log(message: string): void {
  process.stdout.write(`redisfs keeper[${process.pid}] ${new Date().toISOString()}: ${message}\n`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    binary: { type: 'string', default: '' },
    'idle-seconds': { type: 'string', default: '600' },
  },
});
const dataDir = values['data-dir'];
if (!dataDir) {
  process.stderr.write('usage: private-redis-keeper --data-dir DIR [--binary PATH] [--idle-seconds N]\n');
  process.exit(2);
}
process.title = 'redisfs-keeper';
process.exitCode = await new Keeper(privateRedisPaths(dataDir), values.binary, Number(values['idle-seconds'])).run();
