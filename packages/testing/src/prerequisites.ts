/**
 * What the e2e suite needs from the machine, checked once per test file before anything starts.
 *
 * A missing prerequisite fails loudly when CI=true (CI must never go green by skipping);
 * elsewhere the suite is skipped with a message saying what to install. describeWithRedis checks
 * them for a block with its own server; without one:
 *
 *   const ready = await prerequisitesMet({ fuse: true });
 *   describe.skipIf(!ready)('...', () => { ... });
 */
import { constants, accessSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { findExecutable } from '@redisfs/cli-common';

/** Thrown under CI=true when the machine lacks something the e2e suite needs. */
export class PrerequisiteError extends Error {
  override readonly name = 'PrerequisiteError';
}

/** Whether we run under CI, where skipping is not allowed. */
export function isCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/** The absolute path of an executable found on PATH, or undefined: the CLIs' own search. */
export { findExecutable };

/** `fusermount` (FUSE 2), or `fusermount3` where only FUSE 3's is installed; undefined if neither. */
export function findFusermount(): string | undefined {
  return findExecutable('fusermount') ?? findExecutable('fusermount3');
}

/** A Docker-compatible engine endpoint, as testcontainers would find it. */
type Endpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

function candidateEndpoints(): Endpoint[] {
  const dockerHost = process.env.DOCKER_HOST;
  if (dockerHost) {
    if (dockerHost.startsWith('unix://')) return [{ kind: 'unix', path: dockerHost.slice('unix://'.length) }];
    if (dockerHost.startsWith('tcp://')) {
      const url = new URL(dockerHost);
      return [{ kind: 'tcp', host: url.hostname, port: Number(url.port || 2375) }];
    }
    return [];
  }
  const sockets = ['/var/run/docker.sock', join(homedir(), '.docker/run/docker.sock')];
  if (process.env.XDG_RUNTIME_DIR) sockets.push(join(process.env.XDG_RUNTIME_DIR, 'podman/podman.sock'));
  return sockets.filter((p) => existsSync(p)).map((path) => ({ kind: 'unix', path }));
}

const PING_TIMEOUT_MS = 1500;

function pingUnix(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: path, path: '/_ping', timeout: PING_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function reachTcp(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: PING_TIMEOUT_MS });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

let runtimeAnswer: Promise<boolean> | undefined;

/**
 * Whether a container runtime answers, checked cheaply (about a second at worst) so testcontainers
 * is only asked when it can succeed; it would otherwise spend a long time probing strategies.
 * REDISFS_E2E_REDIS=local forces the local binary, =container forces testcontainers.
 */
export function containerRuntimeAnswers(): Promise<boolean> {
  const forced = process.env.REDISFS_E2E_REDIS;
  if (forced === 'local') return Promise.resolve(false);
  if (forced === 'container') return Promise.resolve(true);
  runtimeAnswer ??= (async () => {
    for (const endpoint of candidateEndpoints()) {
      const ok = endpoint.kind === 'unix' ? await pingUnix(endpoint.path) : await reachTcp(endpoint.host, endpoint.port);
      if (ok) return true;
    }
    return false;
  })();
  return runtimeAnswer;
}

/**
 * Says that `what` is missing and how to get it (`hint`): throws a PrerequisiteError under
 * CI=true, else warns that the tests are skipped and returns false.
 */
export function missingPrerequisite(what: string, hint: string): false {
  const message = `${what} is missing: ${hint}`;
  if (isCi()) throw new PrerequisiteError(`${message} (CI=true: the e2e suite does not skip in CI)`);
  console.warn(`[e2e] skipping: ${message}`);
  return false;
}

/**
 * True when a real Redis can be started (a container runtime answers, or `redis-server` is on
 * PATH). Otherwise throws under CI=true, else warns and returns false so the suite can skip.
 */
export async function requireRedis(): Promise<boolean> {
  if (await containerRuntimeAnswers()) return true;
  if (findExecutable('redis-server')) return true;
  return missingPrerequisite(
    'redis-server',
    'no container runtime answers and redis-server is not on PATH; install it with `sudo apt-get install redis-server` (or run `bash scripts/bootstrap.sh`)',
  );
}

/**
 * True when local `redis-server` and `redis-cli` are on PATH: a Redis Cluster or Sentinel setup
 * is made of several local servers (a container runtime is no help). Otherwise as requireRedis.
 */
export function requireRedisTools(): boolean {
  if (findExecutable('redis-server') && findExecutable('redis-cli')) return true;
  return missingPrerequisite('redis-server or redis-cli', 'cluster and sentinel tests start local servers; install them with `sudo apt-get install redis-server`');
}

/**
 * True when this process can mount FUSE filesystems: /dev/fuse is readable and writable and
 * `fusermount` (or `fusermount3`) is on PATH. Otherwise throws under CI=true, else warns and returns false.
 */
export function requireFuse(): boolean {
  const hint = 'install it with `sudo apt-get install fuse libfuse2 libfuse-dev` (or run `bash scripts/bootstrap.sh`)';
  if (!findFusermount()) return missingPrerequisite('fusermount', hint);
  if (!existsSync('/dev/fuse')) return missingPrerequisite('/dev/fuse', 'load the module with `sudo modprobe fuse`; in a container, run it with --device /dev/fuse --cap-add SYS_ADMIN');
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return missingPrerequisite('access to /dev/fuse', 'this user cannot open /dev/fuse; add it to the `fuse` group or run as root');
  }
  return true;
}
