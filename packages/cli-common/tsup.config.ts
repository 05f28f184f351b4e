import { defineConfig } from 'tsup';
import { tsupOptions } from '../../tsup.config.base.js';

export default defineConfig(tsupOptions(['src/index.ts']));
