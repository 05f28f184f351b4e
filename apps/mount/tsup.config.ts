import { defineConfig } from 'tsup';
import { tsupOptions } from '../../tsup.config.base.js';

export default defineConfig(tsupOptions(['src/cli.ts'], { dts: false, banner: { js: '#!/usr/bin/env node' } }));
