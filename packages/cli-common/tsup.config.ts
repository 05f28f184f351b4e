import { defineConfig } from 'tsup';
import { tsupOptions } from '../../tsup.config.base.js';

// The keeper of the private redis-server is a program of its own, spawned by private-redis.ts
// from next to dist/index.js.
export default defineConfig(tsupOptions(['src/index.ts', 'src/private-redis-keeper.ts']));
