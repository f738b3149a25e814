import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findSoftHsmModule, Keyring } from '../../src/keys/index.js';
import { rejectsWith, tempDir } from './helpers.js';

/**
 * Red-team regressions for the keyring (attacker: can write the keyring file, not read secrets).
 *
 * A pkcs11 keyring file names the PKCS#11 module to load and nothing authenticates it. Before the
 * fix, an edited `provider.module` was loaded as given: the library's code ran in the process that
 * opened the keyring (constructors run at dlopen) and C_Login handed it the token's PIN. The module
 * now has to be a SoftHSM2 location or listed in BULWARK_PKCS11_MODULES.
 */

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const softhsm = findSoftHsmModule();
const noGcc = has('gcc', ['--version']) ? undefined : 'gcc is not installed: cannot build the test library';
const noHsm =
  softhsm !== undefined && has('softhsm2-util', ['--version'])
    ? undefined
    : 'SoftHSM2 is not installed (apt-get install softhsm2): SKIPPED';
if (noGcc) process.stderr.write(`\n*** ${noGcc} ***\n\n`);
if (noHsm) process.stderr.write(`\n*** ${noHsm} ***\n\n`);

const TOKEN = 'bulwark-redteam';
const PIN = '1234';

/** A shared library whose constructor writes `marker` when it is loaded: the attacker's "module". */
function evilLibrary(dir: string, marker: string): string {
  const src = join(dir, 'evil.c');
  const lib = join(dir, 'evil.so');
  writeFileSync(
    src,
    `#include <stdio.h>\n__attribute__((constructor)) static void run(void) {\n  FILE *f = fopen(${JSON.stringify(marker)}, "w");\n  if (f) { fputs("loaded", f); fclose(f); }\n}\n`,
  );
  execFileSync('gcc', ['-shared', '-fPIC', '-o', lib, src], { stdio: 'pipe' });
  return lib;
}

describe('pkcs11 keyring: the module is chosen by the machine, not by the file', {
  skip: noGcc ?? noHsm,
}, () => {
  const dir = (noGcc ?? noHsm) ? '' : tempDir('bulwark-redteam-hsm-');

  it('an edited keyring naming another library is refused before that library is loaded', async () => {
    mkdirSync(join(dir, 'tokens'));
    const conf = join(dir, 'softhsm2.conf');
    writeFileSync(
      conf,
      `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
    );
    process.env['SOFTHSM2_CONF'] = conf;
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', TOKEN, '--pin', PIN, '--so-pin', '87654321'],
      {
        stdio: 'pipe',
      },
    );
    const path = join(dir, 'hsm.json');
    const kr = await Keyring.create(path, {
      provider: 'pkcs11',
      settings: { token: TOKEN, module: softhsm },
      secret: { value: PIN },
    });
    await kr.createKey('data');
    await kr.close();

    const marker = join(dir, 'loaded.txt');
    const evil = evilLibrary(dir, marker);
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { provider: Record<string, string> };
    doc.provider['module'] = evil;
    writeFileSync(path, JSON.stringify(doc));
    const e = await rejectsWith(
      () => Keyring.open(path, { provider: 'pkcs11', secret: { value: PIN } }),
      'ERR_PKCS11_MODULE_UNTRUSTED',
    );
    assert.match(e.message, /BULWARK_PKCS11_MODULES/);
    assert.doesNotMatch(e.message, new RegExp(PIN));
    assert.equal(existsSync(marker), false, 'the library named by the file was never loaded');

    // A path that climbs through `..` or a symlink to an untrusted library is compared by its real path.
    const link = join(dir, 'libsofthsm2.so');
    symlinkSync(evil, link);
    doc.provider['module'] = link;
    writeFileSync(path, JSON.stringify(doc));
    await rejectsWith(
      () => Keyring.open(path, { provider: 'pkcs11', secret: { value: PIN } }),
      'ERR_PKCS11_MODULE_UNTRUSTED',
    );
    assert.equal(existsSync(marker), false);

    // The same refusal at creation: --module is checked like the file's module.
    await rejectsWith(
      () =>
        Keyring.create(join(dir, 'other.json'), {
          provider: 'pkcs11',
          settings: { token: TOKEN, module: evil },
          secret: { value: PIN },
        }),
      'ERR_PKCS11_MODULE_UNTRUSTED',
    );
    assert.equal(existsSync(marker), false);

    // What the check prevents: a module the operator lists is loaded, and its code runs.
    process.env['BULWARK_PKCS11_MODULES'] = `/nonexistent/x.so:${evil}`;
    try {
      await rejectsWith(() => Keyring.open(path, { provider: 'pkcs11', secret: { value: PIN } }), 'ERR_HSM');
      assert.equal(readFileSync(marker, 'utf8'), 'loaded');
    } finally {
      delete process.env['BULWARK_PKCS11_MODULES'];
    }

    // Restored to SoftHSM2 (here through a symlink to it): the keyring opens and its key works.
    const good = join(dir, 'softhsm-link.so');
    symlinkSync(softhsm!, good);
    doc.provider['module'] = good;
    writeFileSync(path, JSON.stringify(doc));
    const again = await Keyring.open(path, { provider: 'pkcs11', secret: { value: PIN } });
    const dek = Buffer.alloc(32, 7);
    const w = await again.wrapKey('data', dek, 'ctx');
    assert.deepEqual(await again.unwrapKey(w, 'ctx'), dek);
    await again.close();
  });
});
