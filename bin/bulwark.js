#!/usr/bin/env node
// The `bulwark` executable: runs the compiled CLI (npm run build writes dist/).
import '../dist/cli/main.js';
