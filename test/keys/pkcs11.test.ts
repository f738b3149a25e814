import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decryptBytes, encryptBytes, findSoftHsmModule, Keyring } from '../../src/keys/index.js';
import { runBulwark } from '../helpers/cli.js';
import { rejectsWith, tempDir } from './helpers.js';

/**
 * The pkcs11 provider against a real SoftHSM2 token created in a temporary folder. When SoftHSM2 is
 * not installed (apt-get install softhsm2; CI installs it from scripts/system-deps.txt) these tests
 * say so loudly and skip: they never pass without a token.
 */

function softhsmUtil(): string | undefined {
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'pipe' });
    return 'softhsm2-util';
  } catch {
    return undefined;
  }
}

const module = findSoftHsmModule();
const util = softhsmUtil();
const missing =
  module === undefined || util === undefined
    ? 'SoftHSM2 is not installed (apt-get install softhsm2): the PKCS#11 tests are SKIPPED'
    : undefined;
if (missing) process.stderr.write(`\n*** ${missing} ***\n\n`);

const TOKEN = 'bulwark-test';
const PIN = '4321';

function setUpToken(): string {
  const dir = tempDir('bulwark-hsm-');
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  // SoftHSM reads SOFTHSM2_CONF when the module is initialised (once per process).
  process.env['SOFTHSM2_CONF'] = conf;
  execFileSync(util!, ['--init-token', '--free', '--label', TOKEN, '--pin', PIN, '--so-pin', '87654321'], {
    stdio: 'pipe',
  });
  return dir;
}

describe('pkcs11 provider (SoftHSM2)', { skip: missing }, () => {
  const dir = missing ? '' : setUpToken();
  const dek = randomBytes(32);
  let kr: Keyring;

  it('generates a non-extractable, sensitive AES key inside the token', async () => {
    // Another library of this process initialised the module first: the keyring's C_Initialize then
    // answers CKR_CRYPTOKI_ALREADY_INITIALIZED, which it must take (by its result code) as success.
    const first = new (createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js')).PKCS11();
    first.load(module!);
    first.C_Initialize();
    kr = await Keyring.create(join(dir, 'hsm.json'), {
      provider: 'pkcs11',
      settings: { token: TOKEN, module },
      secret: { value: PIN },
    });
    const info = await kr.createKey('data');
    assert.match(info.location, /^token object bulwark:data:v1 \(id [0-9a-f]{32}\)$/);
    const doc = JSON.parse(readFileSync(kr.path, 'utf8')) as { provider: Record<string, string> };
    assert.deepEqual(doc.provider, { name: 'pkcs11', module, token: TOKEN });
    // Look at the object with the raw binding: its value must not be readable.
    const require = createRequire(import.meta.url);
    const p = require('pkcs11js') as typeof import('pkcs11js');
    const lib = new p.PKCS11();
    lib.load(module!);
    try {
      lib.C_Initialize();
    } catch {
      // already initialised in this process by the keyring
    }
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === TOKEN)!;
    const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION);
    try {
      lib.C_Login(session, p.CKU_USER, PIN);
    } catch {
      // the keyring's session already logged the token in
    }
    lib.C_FindObjectsInit(session, [{ type: p.CKA_LABEL, value: 'bulwark:data:v1' }]);
    const [h] = lib.C_FindObjects(session, 2);
    lib.C_FindObjectsFinal(session);
    assert.ok(h, 'the key object is in the token');
    const attrs = lib.C_GetAttributeValue(session, h, [
      { type: p.CKA_EXTRACTABLE },
      { type: p.CKA_SENSITIVE },
      { type: p.CKA_TOKEN },
    ]);
    assert.deepEqual(
      attrs.map((a) => (a.value as Buffer)[0]),
      [0, 1, 1],
    );
    assert.throws(
      () => lib.C_GetAttributeValue(session, h, [{ type: p.CKA_VALUE }]),
      /CKR_ATTRIBUTE_SENSITIVE/,
    );
    lib.C_CloseSession(session);
  });

  it('wraps and unwraps inside the token; any failed unwrap is ERR_KEY_UNWRAP', async () => {
    const w = await kr.wrapKey('data', dek, 'ds:1');
    assert.equal(w.alg, 'PKCS11-CKM_AES_GCM');
    assert.deepEqual(await kr.unwrapKey(w, 'ds:1'), dek);
    // SoftHSM2 reports these as CKR_GENERAL_ERROR; they must read as authentication failures.
    const blob = Buffer.from(w.wrapped, 'base64');
    for (const i of [0, 11, 12, 30, blob.length - 1]) {
      const t = Buffer.from(blob);
      t[i]! ^= 1;
      await rejectsWith(
        () => kr.unwrapKey({ ...w, wrapped: t.toString('base64') }, 'ds:1'),
        'ERR_KEY_UNWRAP',
        `byte ${i}`,
      );
    }
    await rejectsWith(() => kr.unwrapKey(w, 'ds:2'), 'ERR_KEY_UNWRAP');
    // The session still works after failed decrypts.
    assert.deepEqual(await kr.unwrapKey(w, 'ds:1'), dek);
  });

  it('counts every wrap in the keyring file, across processes, and refuses past 2^32 (random GCM IVs)', async () => {
    const wraps = () =>
      (JSON.parse(readFileSync(kr.path, 'utf8')) as { keys: { versions: { wraps?: number }[] }[] }).keys[0]!
        .versions[0]!.wraps;
    const before = wraps() ?? 0;
    // A second process with the same keyring: the counts add up in the file.
    const other = await Keyring.open(kr.path, { secret: { value: PIN }, provider: 'pkcs11' });
    await kr.wrapKey('data', dek, 'count:1');
    await other.wrapKey('data', dek, 'count:2');
    await kr.wrapKey('data', dek, 'count:3');
    assert.equal(wraps(), before + 3);
    // The token is logged in for the whole process: a second keyring's PIN is still checked, and
    // closing one keyring does not log the other out (it wraps again below).
    await rejectsWith(
      () => Keyring.open(kr.path, { secret: { value: '0000' }, provider: 'pkcs11' }),
      'ERR_HSM',
    );
    await other.close();
    await kr.wrapKey('data', dek, 'count:5');
    assert.equal(wraps(), before + 4);
    const doc = JSON.parse(readFileSync(kr.path, 'utf8')) as { keys: { versions: { wraps?: number }[] }[] };
    doc.keys[0]!.versions[0]!.wraps = 2 ** 32;
    const full = join(dir, 'full.json');
    writeFileSync(full, JSON.stringify(doc));
    const k = await Keyring.open(full, { secret: { value: PIN }, provider: 'pkcs11' });
    await rejectsWith(() => k.wrapKey('data', dek, 'count:4'), 'ERR_KEY_WRAP_LIMIT');
    await k.close();
  });

  it('rotates, reopens with the PIN, encrypts files, and destroys a version in the token', async () => {
    const ct = await encryptBytes(Buffer.from('model weights'), kr, { frameSize: 65536 });
    const w1 = await kr.wrapKey('data', dek, 'c');
    await kr.rotate('data');
    const w2 = await kr.wrapKey('data', dek, 'c');
    assert.equal(w2.version, 2);
    await kr.close();
    kr = await Keyring.open(join(dir, 'hsm.json'), { secret: { value: PIN }, provider: 'pkcs11' });
    assert.deepEqual(await decryptBytes(ct, kr), Buffer.from('model weights'));
    assert.deepEqual(await kr.unwrapKey(w1, 'c'), dek);
    await kr.destroy('data', 1);
    await rejectsWith(() => kr.unwrapKey(w1, 'c'), 'ERR_KEY_DESTROYED');
    await rejectsWith(() => decryptBytes(ct, kr), 'ERR_KEY_DESTROYED');
    assert.deepEqual(await kr.unwrapKey(w2, 'c'), dek);
    // Even with the keyring file edited back to "enabled", the token no longer has the key.
    const doc = JSON.parse(readFileSync(kr.path, 'utf8')) as { keys: { versions: { status: string }[] }[] };
    doc.keys[0]!.versions[0]!.status = 'enabled';
    writeFileSync(join(dir, 'edited.json'), JSON.stringify(doc));
    await kr.close();
    const edited = await Keyring.open(join(dir, 'edited.json'), {
      secret: { value: PIN },
      provider: 'pkcs11',
    });
    await rejectsWith(() => edited.unwrapKey(w1, 'c'), 'ERR_KEY_NOT_FOUND');
    await edited.close();
  });

  it('through the CLI: keys init --provider pkcs11, encrypt and decrypt a file, PIN from a variable', () => {
    const kr2 = join(dir, 'cli-hsm.json');
    const env = { BULWARK_TEST_PIN: PIN };
    const auth = ['--keyring', kr2, '--pin-env', 'BULWARK_TEST_PIN'];
    const use = [...auth, '--keyring-provider', 'pkcs11'];
    let r = runBulwark(
      [
        'keys',
        'init',
        '--provider',
        'pkcs11',
        '--token',
        TOKEN,
        '--module',
        module!,
        '--key',
        'model',
        ...auth,
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /provider pkcs11/);
    assert.match(r.stdout, /token object bulwark:model:v1/);
    writeFileSync(join(dir, 'w.bin'), Buffer.alloc(70_000, 3));
    r = runBulwark(
      [
        'keys',
        'encrypt',
        join(dir, 'w.bin'),
        '--out',
        join(dir, 'w.enc'),
        '--key',
        'model',
        '--frame-size',
        '65536',
        ...use,
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    r = runBulwark(['keys', 'decrypt', join(dir, 'w.enc'), '--out', join(dir, 'w.dec'), ...use], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(join(dir, 'w.dec')), Buffer.alloc(70_000, 3));
    r = runBulwark(['keys', 'list', ...use], { env: { BULWARK_TEST_PIN: '0000' } });
    assert.equal(r.code, 6);
    assert.match(r.stderr, /^bulwark: ERR_HSM: login to token "bulwark-test" failed: CKR_PIN_INCORRECT/);
    assert.doesNotMatch(r.stderr, /0000/);
  });

  it('a wrong PIN or an unknown token is ERR_HSM; no PIN source is ERR_SECRET_MISSING', async () => {
    await rejectsWith(
      () => Keyring.open(join(dir, 'hsm.json'), { secret: { value: '0000' }, provider: 'pkcs11' }),
      'ERR_HSM',
    );
    await rejectsWith(
      () => Keyring.open(join(dir, 'hsm.json'), { secret: { prompt: false }, provider: 'pkcs11' }),
      'ERR_SECRET_MISSING',
    );
    await rejectsWith(
      () =>
        Keyring.create(join(dir, 'x.json'), {
          provider: 'pkcs11',
          settings: { token: 'nope', module },
          secret: { value: PIN },
        }),
      'ERR_HSM',
    );
    await rejectsWith(
      () =>
        Keyring.create(join(dir, 'y.json'), {
          provider: 'pkcs11',
          settings: { token: TOKEN, module: '/nonexistent/lib.so' },
          secret: { value: PIN },
        }),
      'ERR_HSM',
    );
  });
});
