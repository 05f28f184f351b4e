/** Finding a TCP port nothing listens on, by letting the kernel pick one. */
import { createServer } from 'node:net';

/**
 * A port on 127.0.0.1 that was free a moment ago. Another process may take it before the caller
 * binds it, so whoever binds must be ready to try again (startRedis is).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('the kernel picked no port'))));
    });
  });
}
