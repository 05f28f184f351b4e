import type { Options } from 'tsup';

/** Shared tsup settings: ESM for Node 20, types emitted, one output per entry. */
export function tsupOptions(entry: string[], extra: Partial<Options> = {}): Options {
  return {
    entry,
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    ...extra,
  };
}
