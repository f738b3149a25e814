import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  getKeyProvider,
  Keyring,
  keyProviderNames,
  readSecret,
  registerKeyProvider,
  type WrappedKey,
} from '../../src/keys/index.js';
import { localKeyring, rejectsWith, TEST_SCRYPT, tempDir } from './helpers.js';

const dek = randomBytes(32);

describe('local keyring', () => {
  const dir = tempDir();

  it('is created sealed with mode 0600 and no key bytes in clear', async () => {
    const kr = await localKeyring(dir, 'a.json');
    const text = readFileSync(kr.path, 'utf8');
    const doc = JSON.parse(text) as Record<string, unknown>;
    assert.equal(doc['format'], 'bulwark-keyring');
    assert.equal(doc['version'], 1);
    assert.deepEqual(Object.keys(doc).sort(), [
      'check',
      'format',
      'id',
      'kdf',
      'provider',
      'sealed',
      'version',
    ]);
    assert.equal(statSync(kr.path).mode & 0o777, 0o600);
    assert.deepEqual((doc['kdf'] as Record<string, unknown>)['N'], TEST_SCRYPT.N);
    assert.doesNotMatch(text, /"key"/);
    await kr.close();
  });

  it('reopens with the passphrase; the wrong one is ERR_PASSPHRASE_WRONG', async () => {
    const kr = await localKeyring(dir, 'b.json', 'right');
    const w = await kr.wrapKey('data', dek, 'ctx');
    await kr.close();
    const again = await Keyring.open(join(dir, 'b.json'), { secret: { value: 'right' } });
    assert.deepEqual(await again.unwrapKey(w, 'ctx'), dek);
    assert.equal(again.id, kr.id);
    await rejectsWith(
      () => Keyring.open(join(dir, 'b.json'), { secret: { value: 'wrong' } }),
      'ERR_PASSPHRASE_WRONG',
    );
    await rejectsWith(
      () => Keyring.open(join(dir, 'b.json'), { secret: { prompt: false } }),
      'ERR_SECRET_MISSING',
    );
  });

  it('detects an altered file: sealed bytes, header fields, format version', async () => {
    const kr = await localKeyring(dir, 'c.json', 'pw');
    await kr.close();
    const path = join(dir, 'c.json');
    const orig = readFileSync(path, 'utf8');
    const doc = JSON.parse(orig) as Record<string, unknown>;
    const sealed = Buffer.from(doc['sealed'] as string, 'base64');
    for (const at of [0, 40, 70, sealed.length - 1]) {
      const s = Buffer.from(sealed);
      s[at]! ^= 1;
      writeFileSync(path, JSON.stringify({ ...doc, sealed: s.toString('base64') }));
      await rejectsWith(
        () => Keyring.open(path, { secret: { value: 'pw' } }),
        'ERR_KEYRING_INVALID',
        `byte ${at}`,
      );
    }
    writeFileSync(path, JSON.stringify({ ...doc, id: randomBytes(16).toString('hex') }));
    await rejectsWith(() => Keyring.open(path, { secret: { value: 'pw' } }), 'ERR_KEYRING_INVALID');
    writeFileSync(path, JSON.stringify({ ...doc, version: 2 }));
    await rejectsWith(() => Keyring.open(path, { secret: { value: 'pw' } }), 'ERR_FORMAT_VERSION');
    writeFileSync(path, '{"hello": 1}');
    await rejectsWith(() => Keyring.open(path, { secret: { value: 'pw' } }), 'ERR_KEYRING_INVALID');
    writeFileSync(path, 'not json');
    await rejectsWith(() => Keyring.open(path, { secret: { value: 'pw' } }), 'ERR_KEYRING_INVALID');
    writeFileSync(path, orig);
    await (await Keyring.open(path, { secret: { value: 'pw' } })).close();
  });

  it('refuses a keyring whose header names another provider than the caller pins (default local)', async () => {
    const kr = await localKeyring(dir, 'downgrade.json', 'pw');
    await kr.close();
    const path = join(dir, 'downgrade.json');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { id: string };
    // Whoever can write the file swaps the sealed local keyring for an unsealed "file" one whose key
    // they hold: opened as it says, no passphrase would be asked and new data keys wrapped under theirs.
    const attackerKey = join(dir, 'attacker.key');
    writeFileSync(attackerKey, randomBytes(32).toString('hex'));
    const now = new Date().toISOString();
    const forged = {
      format: 'bulwark-keyring',
      version: 1,
      id: doc.id,
      provider: { name: 'file' },
      keys: [
        {
          id: 'data',
          purpose: 'data',
          createdAt: now,
          primary: 1,
          versions: [{ version: 1, status: 'enabled', createdAt: now, ref: { file: attackerKey } }],
        },
      ],
    };
    writeFileSync(path, JSON.stringify(forged));
    // The forgery is well-formed: opened with the provider it names, it loads.
    await (await Keyring.open(path, { provider: 'file' })).close();
    const e = await rejectsWith(
      () => Keyring.open(path, { secret: { value: 'pw' } }),
      'ERR_KEYRING_PROVIDER_MISMATCH',
    );
    assert.match(e.message, /names the key provider "file", but "local" was expected/);
    writeFileSync(
      path,
      JSON.stringify({ ...forged, provider: { name: 'pkcs11', module: '/tmp/evil.so', token: 't' } }),
    );
    await rejectsWith(() => Keyring.open(path, { secret: { value: 'pw' } }), 'ERR_KEYRING_PROVIDER_MISMATCH');
  });

  it('refuses to overwrite a keyring and rejects a bad scrypt setting', async () => {
    await localKeyring(dir, 'd.json');
    await rejectsWith(() => localKeyring(dir, 'd.json'), 'ERR_FILE_EXISTS');
    await rejectsWith(
      () => Keyring.create(join(dir, 'e.json'), { secret: { value: 'x' }, scrypt: { N: 1000, r: 8, p: 1 } }),
      'ERR_KEYRING_INVALID',
    );
  });
});

describe('keys: rotation, disable, destroy, wrapping', () => {
  const dir = tempDir();

  it('a change made by another process since open is never written over', async () => {
    const kr = await localKeyring(dir, 'race.json', 'pw');
    await kr.rotate('data');
    const path = join(dir, 'race.json');
    // Two processes hold the keyring open; one destroys version 1, the other then rotates.
    const a = await Keyring.open(path, { secret: { value: 'pw' } });
    const b = await Keyring.open(path, { secret: { value: 'pw' } });
    await a.destroy('data', 1);
    await rejectsWith(() => b.rotate('data'), 'ERR_KEYRING_CHANGED');
    const now = await Keyring.open(path, { secret: { value: 'pw' } });
    assert.deepEqual(
      now.list().map((v) => [v.version, v.status]),
      [
        [1, 'destroyed'],
        [2, 'enabled'],
      ],
    );
    // The process that wrote last can go on changing the file; the lock is released after each write.
    await a.rotate('data');
    assert.equal(a.primaryVersion('data'), 3);
    for (const k of [kr, a, b, now]) await k.close();
  });

  it('rotation wraps with the new primary and still unwraps old versions; rewrap moves a DEK', async () => {
    const kr = await localKeyring(dir, 'r.json');
    const w1 = await kr.wrapKey('data', dek, 'ds:1');
    assert.equal(w1.version, 1);
    const v2 = await kr.rotate('data');
    assert.equal(v2.version, 2);
    assert.equal(v2.primary, true);
    assert.equal(kr.primaryVersion('data'), 2);
    const w2 = await kr.wrapKey('data', dek, 'ds:1');
    assert.equal(w2.version, 2);
    assert.deepEqual(await kr.unwrapKey(w1, 'ds:1'), dek);
    const moved = await kr.rewrapKey(w1, 'ds:1');
    assert.equal(moved.version, 2);
    assert.equal(moved.commit, w1.commit, 'the DEK commitment survives a rewrap');
    await kr.destroy('data', 1);
    assert.deepEqual(await kr.unwrapKey(moved, 'ds:1'), dek);
    await rejectsWith(() => kr.unwrapKey(w1, 'ds:1'), 'ERR_KEY_DESTROYED');
    const list = kr.list();
    assert.deepEqual(
      list.map((k) => [k.key, k.version, k.status, k.primary, k.location]),
      [
        ['data', 1, 'destroyed', false, 'erased'],
        ['data', 2, 'enabled', true, 'sealed in the keyring'],
      ],
    );
    // Reopened: the destroyed key is gone from the sealed file for good.
    await kr.close();
    const again = await Keyring.open(kr.path, { secret: { value: 'correct horse' } });
    await rejectsWith(() => again.unwrapKey(w1, 'ds:1'), 'ERR_KEY_DESTROYED');
    assert.deepEqual(await again.unwrapKey(w2, 'ds:1'), dek);
  });

  it('disable refuses wrapping and unwrapping until enabled', async () => {
    const kr = await localKeyring(dir, 'dis.json');
    const w = await kr.wrapKey('data', dek, 'c');
    await kr.disable('data', 1);
    await rejectsWith(() => kr.unwrapKey(w, 'c'), 'ERR_KEY_DISABLED');
    await rejectsWith(() => kr.wrapKey('data', dek, 'c'), 'ERR_KEY_DISABLED');
    await kr.enable('data', 1);
    assert.deepEqual(await kr.unwrapKey(w, 'c'), dek);
    await kr.destroy('data', 1);
    await rejectsWith(() => kr.enable('data', 1), 'ERR_KEY_DESTROYED');
  });

  it('a wrapped key opens only in its keyring, context and unaltered', async () => {
    const a = await localKeyring(dir, 'wa.json');
    const b = await localKeyring(dir, 'wb.json');
    const w = await a.wrapKey('data', dek, 'ds:7');
    await rejectsWith(() => b.unwrapKey(w, 'ds:7'), 'ERR_KEY_NOT_FOUND');
    // Same keyring id forged: the other keyring's key material does not authenticate it.
    await rejectsWith(() => b.unwrapKey({ ...w, keyring: b.id }, 'ds:7'), 'ERR_KEY_UNWRAP');
    await rejectsWith(() => a.unwrapKey(w, 'ds:8'), 'ERR_KEY_UNWRAP');
    await rejectsWith(() => a.unwrapKey({ ...w, version: 5 }, 'ds:7'), 'ERR_KEY_NOT_FOUND');
    await rejectsWith(() => a.unwrapKey({ ...w, key: 'model' }, 'ds:7'), 'ERR_KEY_NOT_FOUND');
    await rejectsWith(() => a.unwrapKey({ ...w, alg: 'X' }, 'ds:7'), 'ERR_FORMAT_VERSION');
    const blob = Buffer.from(w.wrapped, 'base64');
    for (let i = 0; i < blob.length; i += 7) {
      const t = Buffer.from(blob);
      t[i]! ^= 4;
      await rejectsWith(
        () => a.unwrapKey({ ...w, wrapped: t.toString('base64') }, 'ds:7'),
        'ERR_KEY_UNWRAP',
        `byte ${i}`,
      );
    }
    const c = Buffer.from(w.commit, 'base64');
    c[0]! ^= 1;
    await rejectsWith(() => a.unwrapKey({ ...w, commit: c.toString('base64') }, 'ds:7'), 'ERR_KEY_UNWRAP');
  });

  it('validates key ids, purposes and versions', async () => {
    const kr = await localKeyring(dir, 'v.json');
    await rejectsWith(() => kr.createKey('Bad Id'), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(() => kr.createKey('data'), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(() => kr.createKey('other', { purpose: 'data' }), 'ERR_INVALID_ARGUMENT');
    await kr.createKey('model');
    await rejectsWith(() => kr.rotate('nope'), 'ERR_KEY_NOT_FOUND');
    await rejectsWith(() => kr.disable('model', 0), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(() => kr.wrapKey('model', Buffer.alloc(16), 'c'), 'ERR_INVALID_ARGUMENT');
  });
});

describe('file and env providers', () => {
  const dir = tempDir();

  it('file: wraps with a mounted key; a changed key file is ERR_KEY_UNWRAP', async () => {
    const keyFile = join(dir, 'kek');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`);
    const kr = await Keyring.create(join(dir, 'f.json'), { provider: 'file' });
    await kr.createKey('data', { source: { file: keyFile } });
    const w = await kr.wrapKey('data', dek, 'c');
    const doc = readFileSync(kr.path, 'utf8');
    assert.doesNotMatch(doc, new RegExp(readFileSync(keyFile, 'utf8').trim()));
    await kr.close();
    await rejectsWith(() => Keyring.open(kr.path), 'ERR_KEYRING_PROVIDER_MISMATCH');
    const again = await Keyring.open(kr.path, { provider: 'file' });
    assert.deepEqual(await again.unwrapKey(w, 'c'), dek);
    writeFileSync(keyFile, randomBytes(32));
    await rejectsWith(() => again.unwrapKey(w, 'c'), 'ERR_KEY_UNWRAP');
    writeFileSync(keyFile, 'short');
    await rejectsWith(() => again.unwrapKey(w, 'c'), 'ERR_KEY_UNWRAP');
    await rejectsWith(() => again.createKey('model', { source: {} }), 'ERR_INVALID_ARGUMENT');
  });

  it('env: base64 key in a variable; rotation to a new variable', async () => {
    process.env['BULWARK_TEST_KEK1'] = randomBytes(32).toString('base64');
    process.env['BULWARK_TEST_KEK2'] = randomBytes(32).toString('base64');
    const kr = await Keyring.create(join(dir, 'e.json'), { provider: 'env' });
    await kr.createKey('data', { source: { env: 'BULWARK_TEST_KEK1' } });
    const w1 = await kr.wrapKey('data', dek, 'c');
    await kr.rotate('data', { source: { env: 'BULWARK_TEST_KEK2' } });
    const w2 = await kr.wrapKey('data', dek, 'c');
    assert.deepEqual(await kr.unwrapKey(w1, 'c'), dek);
    assert.deepEqual(await kr.unwrapKey(w2, 'c'), dek);
    delete process.env['BULWARK_TEST_KEK1'];
    await rejectsWith(() => kr.unwrapKey(w1, 'c'), 'ERR_SECRET_MISSING');
    await kr.destroy('data', 1);
    await rejectsWith(() => kr.unwrapKey(w1, 'c'), 'ERR_KEY_DESTROYED');
    delete process.env['BULWARK_TEST_KEK2'];
  });
});

describe('secrets and the provider registry', () => {
  const dir = tempDir();

  it('reads a secret from a file (one newline dropped) or a variable; never guesses', async () => {
    writeFileSync(join(dir, 'p'), 'pass phrase\n');
    assert.equal((await readSecret('passphrase', { file: join(dir, 'p') })).toString(), 'pass phrase');
    process.env['BULWARK_TEST_PASS'] = 'from env';
    assert.equal((await readSecret('passphrase', { env: 'BULWARK_TEST_PASS' })).toString(), 'from env');
    delete process.env['BULWARK_TEST_PASS'];
    await rejectsWith(() => readSecret('passphrase', { env: 'BULWARK_TEST_PASS' }), 'ERR_SECRET_MISSING');
    await rejectsWith(() => readSecret('passphrase', { file: join(dir, 'none') }), 'ERR_FILE_NOT_FOUND');
    writeFileSync(join(dir, 'empty'), '\n');
    await rejectsWith(() => readSecret('passphrase', { file: join(dir, 'empty') }), 'ERR_SECRET_MISSING');
    const e = await rejectsWith(() => readSecret('passphrase', { prompt: false }), 'ERR_SECRET_MISSING');
    assert.doesNotMatch(e.message, /pass phrase/);
  });

  it('has the four built-in providers; a custom one can be registered once', async () => {
    assert.deepEqual(keyProviderNames().slice(0, 4), ['local', 'pkcs11', 'file', 'env']);
    await rejectsWith(async () => getKeyProvider('kms'), 'ERR_INVALID_ARGUMENT');
    // A provider that keeps keys in memory: enough to show the interface is all a KMS needs.
    const keys = new Map<string, Buffer>();
    registerKeyProvider({
      name: 'memory-test',
      sealed: false,
      description: 'test',
      configure: () => ({}),
      open: async () => ({
        name: 'memory-test',
        async createKey(id, version) {
          keys.set(`${id}/${version}`, randomBytes(32));
          return { name: `${id}/${version}` };
        },
        async wrap(ref, d) {
          const k = keys.get(String(ref['name']))!;
          return { alg: 'xor', blob: Buffer.from(d.map((x, i) => x ^ k[i]!)) };
        },
        async unwrap(ref, _alg, blob) {
          const k = keys.get(String(ref['name']))!;
          return Buffer.from(blob.map((x, i) => x ^ k[i]!));
        },
        async destroy(ref) {
          keys.delete(String(ref['name']));
          return ref;
        },
        async close() {},
      }),
    });
    assert.throws(() => registerKeyProvider(getKeyProvider('local')), /not yet registered/);
    const kr = await Keyring.create(join(dir, 'm.json'), { provider: 'memory-test' });
    await kr.createKey('data');
    const w: WrappedKey = await kr.wrapKey('data', dek, 'c');
    assert.deepEqual(await kr.unwrapKey(w, 'c'), dek);
    // The keyring's own DEK commitment catches a provider that returns the wrong key.
    const t = Buffer.from(w.wrapped, 'base64');
    t[0]! ^= 1;
    await rejectsWith(() => kr.unwrapKey({ ...w, wrapped: t.toString('base64') }, 'c'), 'ERR_KEY_UNWRAP');
  });
});
