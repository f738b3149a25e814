import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Keyring, MIN_PASSPHRASE_CHARS } from '../../src/keys/index.js';
import { runBulwarkInProcess } from '../helpers/cli.js';
import { tempDir } from './helpers.js';

/**
 * `keys init` accepted a 5-character passphrase without a word (README walk-through, 2026-11-28): the
 * keyring file can be copied and guessed at offline. A passphrase shorter than 12 characters is now
 * warned of (counted in characters, not bytes); the keyring is still created.
 */
describe('a short keyring passphrase', () => {
  const dir = tempDir('bulwark-weak-pass-');

  it('keys init warns below 12 characters, and only then; the warning never shows the passphrase', async () => {
    const cases: [string, boolean][] = [
      ['hunt2', true],
      ['elevenchars', true],
      ['twelve chars', false],
      // 11 characters in 22 bytes: counted as characters.
      ['ééééééééééé', true],
    ];
    for (const [i, [pass, warned]] of cases.entries()) {
      const file = join(dir, `pass-${i}.txt`);
      writeFileSync(file, `${pass}\n`);
      const r = await runBulwarkInProcess([
        'keys',
        'init',
        '--keyring',
        join(dir, `kr-${i}.json`),
        '--passphrase-file',
        file,
        '--scrypt-log-n',
        '10',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        /WARNING: the keyring passphrase is shorter than 12 characters/.test(r.stderr),
        warned,
        pass,
      );
      assert.doesNotMatch(r.stderr + r.stdout, new RegExp(pass));
    }
  });

  it('the library tells the caller through onWeakPassphrase, and creates the keyring either way', async () => {
    let told = 0;
    const short = await Keyring.create(join(dir, 'lib-short.json'), {
      secret: { value: 'x'.repeat(MIN_PASSPHRASE_CHARS - 1) },
      scrypt: { N: 2 ** 10, r: 8, p: 1 },
      onWeakPassphrase: () => told++,
    });
    await short.close();
    const long = await Keyring.create(join(dir, 'lib-long.json'), {
      secret: { value: 'x'.repeat(MIN_PASSPHRASE_CHARS) },
      scrypt: { N: 2 ** 10, r: 8, p: 1 },
      onWeakPassphrase: () => told++,
    });
    await long.close();
    assert.equal(told, 1);
  });
});
