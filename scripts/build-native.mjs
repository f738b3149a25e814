#!/usr/bin/env node
// Builds the optional native AES-256-GCM addon (native/aead.c) into build/native/aead.node with the C
// compiler and the headers that ship with Node.js itself (no download, no node-gyp). The addon resolves
// OpenSSL's symbols against the running node binary, so it uses the same OpenSSL as node:crypto.
// Optional by design: without a compiler or the headers, Bulwark falls back to node:crypto (slower bulk
// encryption, same bytes); this script says so and exits 0. BULWARK_NATIVE=0 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const say = (m) => process.stderr.write(`build-native: ${m}\n`);
if (process.env.BULWARK_NATIVE === '0') {
  say('skipped (BULWARK_NATIVE=0)');
  process.exit(0);
}
if (process.platform === 'win32') {
  say('not built on Windows; AES-GCM uses node:crypto');
  process.exit(0);
}
const inc = resolve(process.execPath, '../../include/node');
if (!existsSync(join(inc, 'node_api.h')) || !existsSync(join(inc, 'openssl', 'evp.h'))) {
  say(`no Node.js headers with OpenSSL at ${inc}; AES-GCM falls back to node:crypto`);
  process.exit(0);
}
const cc = process.env.CC || 'cc';
const outDir = join(root, 'build', 'native');
mkdirSync(outDir, { recursive: true });
const tmp = mkdtempSync(join(outDir, '.build-'));
const out = join(tmp, 'aead.node');
// -fvisibility=hidden: only the N-API entry point is exported; OpenSSL's symbols stay undefined and
// resolve against node. macOS needs them left undefined explicitly.
const args = [
  '-std=c11',
  '-O2',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  '-fstack-protector-strong',
  '-D_FORTIFY_SOURCE=2',
  '-Wall',
  '-Wextra',
  '-Werror',
  `-I${inc}`,
  ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
  join(root, 'native', 'aead.c'),
  '-o',
  out,
];
const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error || r.status !== 0) {
  rmSync(tmp, { recursive: true, force: true });
  say(
    r.error
      ? `no C compiler (${cc}); AES-GCM falls back to node:crypto (Debian: apt-get install gcc)`
      : `${cc} failed`,
  );
  // A compile error in our own source must not pass unnoticed in CI.
  process.exit(r.error || process.env.CI !== 'true' ? 0 : 1);
}
renameSync(out, join(outDir, 'aead.node'));
rmSync(tmp, { recursive: true, force: true });
