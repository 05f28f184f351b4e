import { defineConfig } from 'vitest/config';

// One config, two projects: unit tests beside the code (real Redis, no FUSE)
// and e2e tests that mount real filesystems.
export default defineConfig({
  resolve: { conditions: ['@redisfs/source'] },
  ssr: { resolve: { conditions: ['@redisfs/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
