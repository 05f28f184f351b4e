/**
 * Redis addresses as the store takes them, one string for every deployment:
 *
 *   redis://[user:pass@]host:port[/db]                 one server (or a cluster node: see below)
 *   redis://[user:pass@]host:port,host:port,…          cluster seed nodes (any one may answer)
 *   redis+sentinel://[user:pass@]host:port,…/NAME      the master NAME, found through sentinels
 *   rediss://, rediss+sentinel://                      the same over TLS
 *
 * Whether a `redis://` server is a Redis Cluster node is asked of the server (INFO cluster) at
 * connect time, so a cluster mounts with the address of any of its nodes. The credentials are
 * the data nodes' (sentinels are asked without them). WHATWG `URL` cannot hold several hosts, so
 * these are parsed here; messages never include the password.
 */

export interface RedisHost {
  host: string;
  port: number;
}

export interface ParsedRedisUrl {
  sentinel: boolean;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  hosts: RedisHost[];
  /** Database number (single servers only; a cluster has database 0 only). */
  database: number | undefined;
  /** The monitored master's name (sentinel). */
  masterName: string | undefined;
}

const SHAPE = /^(rediss?)(\+sentinel)?:\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?$/i;
const DEFAULT_PORT = 6379;
const DEFAULT_SENTINEL_PORT = 26379;

/** Parses a Redis address (see the module comment). Errors say what is wrong, never the value. */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  const m = SHAPE.exec(url);
  if (!m) throw new Error('not a redis://, rediss:// or redis+sentinel:// address');
  const [, scheme, sentinelPart, userinfo, hostList, path] = m;
  const sentinel = sentinelPart !== undefined;
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    const pass = colon < 0 ? undefined : userinfo.slice(colon + 1);
    try {
      username = user === '' ? undefined : decodeURIComponent(user);
      password = pass === undefined || pass === '' ? undefined : decodeURIComponent(pass);
    } catch {
      throw new Error('the user or password is not valid percent-encoding');
    }
  }
  const hosts = (hostList ?? '').split(',').map((h) => parseHost(h, sentinel ? DEFAULT_SENTINEL_PORT : DEFAULT_PORT));
  let database: number | undefined;
  let masterName: string | undefined;
  const rest = (path ?? '').replace(/^\//, '');
  if (sentinel) {
    if (rest === '') throw new Error('a redis+sentinel:// address needs the master name as its path (…/mymaster)');
    masterName = decodeURIComponent(rest);
  } else if (rest !== '') {
    if (!/^\d+$/.test(rest)) throw new Error('the path must be a database number, e.g. /0');
    database = Number(rest);
  }
  return { sentinel, tls: scheme!.toLowerCase() === 'rediss', username, password, hosts, database, masterName };
}

function parseHost(text: string, defaultPort: number): RedisHost {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw new Error(text === '' ? 'no host (expected host:port)' : 'a host is not host or host:port');
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) throw new Error('a port is not from 1 to 65535');
  return { host: m[1] ?? m[2]!, port };
}

/** The address with any password replaced by '***', for messages and logs. */
export function redactRedisUrl(url: string): string {
  let p: ParsedRedisUrl;
  try {
    p = parseRedisUrl(url);
  } catch {
    return '<invalid url>';
  }
  const scheme = `${p.tls ? 'rediss' : 'redis'}${p.sentinel ? '+sentinel' : ''}`;
  const user = p.username === undefined ? '' : encodeURIComponent(p.username);
  const auth = p.password !== undefined ? `${user}:***@` : user !== '' ? `${user}@` : '';
  const hosts = p.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  const path = p.sentinel ? `/${encodeURIComponent(p.masterName!)}` : p.database !== undefined ? `/${p.database}` : '';
  return `${scheme}://${auth}${hosts}${path}`;
}
