/**
 * Just enough of the Redis protocol (RESP2) to look after the private server over its unix socket:
 * commands out as arrays of bulk strings, replies in (simple, error, integer, bulk, array). Only
 * the store package uses a Redis client; this is for CLIENT LIST, INFO and SHUTDOWN.
 */
import { connect, type Socket } from 'node:net';

/** A reply: string (simple or bulk), number, null (nil bulk or array), or an array of replies. */
export type RespReply = string | number | null | RespReply[];

/** An error reply (`-ERR …`). */
export class RespReplyError extends Error {
  override readonly name = 'RespReplyError';
}

/** Rejects the commands still waiting when the connection ends. */
export class RespClosedError extends Error {
  override readonly name = 'RespClosedError';
}

interface Pending {
  resolve(reply: RespReply): void;
  reject(err: Error): void;
}

/** One connection to a Redis unix socket; commands are answered in order. */
export class RespConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private ended = false;
  /** Resolves when the connection has ended, for whatever reason. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.closed = new Promise((resolveClosed) => {
      socket.once('close', () => {
        this.ended = true;
        for (const p of this.pending.splice(0)) p.reject(new RespClosedError('the connection to redis-server closed'));
        resolveClosed();
      });
    });
    socket.on('error', () => {
      // 'close' follows and rejects what waits.
    });
  }

  /** Connects to the unix socket at `path`; rejects when nothing accepts within `timeoutMs`. */
  static open(path: string, timeoutMs = 2_000): Promise<RespConnection> {
    return new Promise((resolveOpen, rejectOpen) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        rejectOpen(new Error(`no answer on ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolveOpen(new RespConnection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        rejectOpen(err);
      });
    });
  }

  /** Sends a command; rejects with RespReplyError on an error reply, RespClosedError when the connection ends first. */
  command(args: readonly string[], timeoutMs?: number): Promise<RespReply> {
    return new Promise((resolveReply, rejectReply) => {
      let timer: NodeJS.Timeout | undefined;
      const entry: Pending = {
        resolve: (reply) => (clearTimeout(timer), resolveReply(reply)),
        reject: (err) => (clearTimeout(timer), rejectReply(err)),
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          // Replies come in order: a late one would be taken for the next command's. Give up the connection.
          this.socket.destroy();
          rejectReply(new Error(`${args[0]} had no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.push(entry);
      const parts = [`*${args.length}\r\n`];
      for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
      this.socket.write(parts.join(''));
    });
  }

  /** A command whose reply must be a string (INFO, CLIENT LIST). */
  async text(args: readonly string[], timeoutMs?: number): Promise<string> {
    const reply = await this.command(args, timeoutMs);
    if (typeof reply !== 'string') throw new Error(`${args.join(' ')}: unexpected reply`);
    return reply;
  }

  /** Whether the connection is still usable. */
  get open(): boolean {
    return !this.ended && !this.socket.destroyed;
  }

  /** Does not keep the process alive. */
  unref(): this {
    this.socket.unref();
    return this;
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const parsed = parseReply(this.buffer, 0);
      if (!parsed) return;
      this.buffer = this.buffer.subarray(parsed.end);
      const waiting = this.pending.shift();
      if (!waiting) continue;
      if (parsed.value instanceof RespReplyError) waiting.reject(parsed.value);
      else waiting.resolve(parsed.value);
    }
  }
}

type Parsed = { value: RespReply | RespReplyError; end: number };

/** One reply starting at `at`, or undefined while it is incomplete. */
function parseReply(buf: Buffer, at: number): Parsed | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const head = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[at] ?? 0)) {
    case '+':
      return { value: head, end: next };
    case '-':
      return { value: new RespReplyError(head), end: next };
    case ':':
      return { value: Number(head), end: next };
    case '$': {
      const length = Number(head);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(head);
      if (count < 0) return { value: null, end: next };
      const items: RespReply[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, end);
        if (!item) return undefined;
        // An error inside an array (EXEC) is not something this module sends for.
        items.push(item.value instanceof RespReplyError ? item.value.message : item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`redis-server sent an unknown reply type ${JSON.stringify(buf.toString('utf8', at, at + 1))}`);
  }
}

/** The `field:value` lines of an INFO reply. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** The clients in a CLIENT LIST reply whose name is not one of `ignoredNames`. */
export function countClients(clientList: string, ignoredNames: readonly string[]): number {
  let count = 0;
  for (const line of clientList.split('\n')) {
    if (line.trim() === '') continue;
    const name = / name=(\S*)/.exec(` ${line}`)?.[1] ?? '';
    if (!ignoredNames.includes(name)) count++;
  }
  return count;
}
