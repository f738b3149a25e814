import { unlink } from 'node:fs/promises';
import type { Command } from 'commander';
import type { AuditEventInput } from '../../audit/index.js';
import { BulwarkError } from '../../core/index.js';
import {
  decryptFile,
  encryptFile,
  Keyring,
  type KeySource,
  type KeyVersionInfo,
  keyProviderNames,
  MIN_PASSPHRASE_CHARS,
  type SecretSource,
} from '../../keys/index.js';
import { readManifest, rewrapProtected, SubjectKeyStore } from '../../protect/index.js';
import { addAuditOption, record, withOperationLog } from '../audit-record.js';
import { checkOutputPath, intOption, listOption } from '../options.js';
import { ioOf } from '../output.js';

/** Help of `--threads` on the file commands (frame-pipeline.ts). */
const THREADS_HELP =
  'frames in flight on the libuv thread pool with the native AES-GCM backend (default 1: all on the calling thread; measure before raising it; files of 8 frames or fewer stay on one thread)';

/** Options every command that opens a keyring takes: where its secret comes from (never argv). */
export interface SecretCliOptions {
  keyring: string;
  /** The provider the keyring must use (`keys init` names it with `--provider` instead). */
  keyringProvider?: string;
  passphraseFile?: string;
  passphraseEnv?: string;
  pinFile?: string;
  pinEnv?: string;
}

/** Help of `--keyring-provider`. */
export const KEYRING_PROVIDER_HELP =
  'the key provider the keyring was created with (local, pkcs11, file, env); a keyring file naming another is refused (ERR_KEYRING_PROVIDER_MISMATCH)';

/**
 * Adds `--keyring` and the secret-source options to a command, and `--keyring-provider` unless the
 * command creates the keyring (`keys init` names the provider itself). With `optional` (its help text),
 * `--keyring` may be left out.
 */
export function withKeyringOptions(c: Command, opts: { creates?: boolean; optional?: string } = {}): Command {
  if (opts.optional !== undefined) c.option('--keyring <file>', opts.optional);
  else c.requiredOption('--keyring <file>', 'keyring file');
  if (!opts.creates) c.option('--keyring-provider <name>', KEYRING_PROVIDER_HELP, 'local');
  return c
    .option('--passphrase-file <file>', 'read the keyring passphrase from this file (e.g. a mounted secret)')
    .option('--passphrase-env <var>', 'read the keyring passphrase from this environment variable')
    .option('--pin-file <file>', 'read the PKCS#11 token PIN from this file')
    .option('--pin-env <var>', 'read the PKCS#11 token PIN from this environment variable');
}

/**
 * The secret source from the options: a file, then a variable, then BULWARK_PASSPHRASE when set,
 * then a prompt on a terminal. Never a command-line value.
 */
export function secretFromOptions(o: SecretCliOptions): SecretSource {
  const file = o.passphraseFile ?? o.pinFile;
  const env = o.passphraseEnv ?? o.pinEnv;
  if (file !== undefined) return { file };
  if (env !== undefined) return { env };
  if (process.env['BULWARK_PASSPHRASE'] !== undefined) return { env: 'BULWARK_PASSPHRASE' };
  return {};
}

/**
 * The files a keyring-opening command reads besides its data: the keyring and the secret's file. A
 * command's output is checked against them (checkOutputPath), so that `--out` never replaces the
 * keyring — whose keys are then gone with it — or the passphrase file.
 */
export function keyringInputs(o: Partial<SecretCliOptions>): (string | undefined)[] {
  return [o.keyring, o.passphraseFile, o.pinFile];
}

/** Opens the keyring named by the options. */
export async function openKeyringFromOptions(o: SecretCliOptions): Promise<Keyring> {
  return Keyring.open(o.keyring, {
    secret: secretFromOptions(o),
    ...(o.keyringProvider !== undefined ? { provider: o.keyringProvider } : {}),
  });
}

function sourceOf(o: { sourceFile?: string; sourceEnv?: string }): KeySource {
  const s: KeySource = {};
  if (o.sourceFile !== undefined) s.file = o.sourceFile;
  if (o.sourceEnv !== undefined) s.env = o.sourceEnv;
  return s;
}

function table(rows: KeyVersionInfo[]): string {
  if (rows.length === 0) return '(no keys)';
  const head = ['key', 'version', 'status', 'primary', 'purpose', 'created', 'location'];
  const body = rows.map((r) => [
    r.key,
    String(r.version),
    r.status,
    r.primary ? 'yes' : '',
    r.purpose,
    r.createdAt.slice(0, 19),
    r.location,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(w[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function withKeyring<T>(o: SecretCliOptions, f: (kr: Keyring) => Promise<T>): Promise<T> {
  const kr = await openKeyringFromOptions(o);
  try {
    return await f(kr);
  } finally {
    await kr.close();
  }
}

/** The audit record of a key version that now exists (created, or made primary by rotation). */
function keyCreatedEvent(info: KeyVersionInfo): AuditEventInput {
  return {
    type: 'key.created',
    data: {
      keyId: `${info.key}.v${info.version}`,
      algorithm: 'aes-256',
      provider: info.provider,
      purpose: info.purpose,
    },
  };
}

/** `withKeyring` inside the operation's audit log (opened first: an unreachable log refuses the change). */
async function withAuditedKeyring<T>(
  o: SecretCliOptions & { audit?: string },
  change: (kr: Keyring) => Promise<{ result: T; event: AuditEventInput }>,
): Promise<{ result: T; auditEvent: string | undefined }> {
  return withOperationLog(o.audit, (log) =>
    withKeyring(o, async (kr) => {
      const { result, event } = await change(kr);
      const [auditEvent] = await record(log, [event]);
      return { result, auditEvent };
    }),
  );
}

/** `bulwark keys ...`: the keyring of key-encryption keys, and file encryption with it. */
export function registerKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('manage the keyring (local sealed file, PKCS#11 token, file or env keys); encrypt files')
    .addHelpText(
      'after',
      '\nSecrets are read from a file, an environment variable (or BULWARK_PASSPHRASE), or a terminal\n' +
        'prompt; never from the command line. See docs/keys.md.',
    );

  withKeyringOptions(
    keys
      .command('init')
      .description('create a keyring and its first key')
      .option('--provider <name>', `where the keys live: ${keyProviderNames().join(', ')}`, 'local')
      .option('--key <id>', 'id of the first key (its purpose too)', 'data')
      .option('--no-key', 'create the keyring without a key')
      .option('--module <path>', 'pkcs11: the PKCS#11 module (default: SoftHSM2 if installed)')
      .option('--token <label>', 'pkcs11: the token label')
      .option(
        '--source-file <file>',
        'file provider: the file holding the first key (32 bytes, hex or base64)',
      )
      .option('--source-env <var>', 'env provider: the variable holding the first key')
      .option('--scrypt-log-n <n>', 'local: scrypt cost as log2(N)', intOption(10, 22), 17),
    { creates: true },
  ).action(async function (this: Command) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & {
        provider: string;
        key: string | false;
        module?: string;
        token?: string;
        sourceFile?: string;
        sourceEnv?: string;
        scryptLogN: number;
      }
    >();
    const kr = await Keyring.create(o.keyring, {
      provider: o.provider,
      settings: { module: o.module, token: o.token },
      secret: secretFromOptions(o),
      scrypt: { N: 2 ** o.scryptLogN, r: 8, p: 1 },
      onWeakPassphrase: () =>
        io.note(
          `WARNING: the keyring passphrase is shorter than ${MIN_PASSPHRASE_CHARS} characters: whoever copies the keyring file can guess it offline, and it guards every key in it. Use a long random one (for example: openssl rand -base64 24)`,
        ),
    });
    try {
      if (o.key !== false) {
        try {
          await kr.createKey(o.key, { source: sourceOf(o) });
        } catch (e) {
          // The keyring file was written just above: without its first key it is not what was asked
          // for, and it would make the corrected command fail with ERR_FILE_EXISTS.
          await kr.close();
          await unlink(o.keyring).catch(() => undefined);
          throw e;
        }
      }
      const list = kr.list();
      io.result({ keyring: o.keyring, id: kr.id, provider: kr.providerName, keys: list }, () =>
        [`created keyring ${o.keyring} (id ${kr.id}, provider ${kr.providerName})`, table(list)].join('\n'),
      );
    } finally {
      await kr.close();
    }
  });

  withKeyringOptions(
    addAuditOption(
      keys
        .command('create')
        .argument('<id>', 'the new key id')
        .description('add a key (its version 1 is primary)')
        .option('--purpose <p>', 'what the key is for (one key per purpose; default: the id)')
        .option('--source-file <file>', 'file provider: the file holding the key')
        .option('--source-env <var>', 'env provider: the variable holding the key'),
    ),
  ).action(async function (this: Command, id: string) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & { purpose?: string; sourceFile?: string; sourceEnv?: string; audit?: string }
    >();
    const { result: info, auditEvent } = await withAuditedKeyring(o, async (kr) => {
      const opts: { purpose?: string; source: KeySource } = { source: sourceOf(o) };
      if (o.purpose !== undefined) opts.purpose = o.purpose;
      const created = await kr.createKey(id, opts);
      return { result: created, event: keyCreatedEvent(created) };
    });
    io.result(
      auditEvent ? { ...info, auditEvent } : info,
      () =>
        `created key ${info.key} version ${info.version} (${info.location})${auditEvent ? `; audit event ${auditEvent}` : ''}`,
    );
  });

  withKeyringOptions(
    addAuditOption(
      keys
        .command('rotate')
        .argument('<id>', 'the key to rotate')
        .description(
          'add a new primary version; older versions only unwrap. Optionally re-wrap protected data',
        )
        .option('--source-file <file>', 'file provider: the file holding the new version')
        .option('--source-env <var>', 'env provider: the variable holding the new version')
        .option(
          '--rewrap <manifests>',
          'comma-separated protection manifests (*.bulwark.json) whose data keys to re-wrap now',
          listOption(String),
        )
        .option('--subjects <file>', 'a subject key store whose store key to re-wrap now'),
    ),
  ).action(async function (this: Command, id: string) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & {
        sourceFile?: string;
        sourceEnv?: string;
        rewrap?: string[];
        subjects?: string;
        audit?: string;
      }
    >();
    const { info, rewrapped, auditEvent } = await withOperationLog(o.audit, (log) =>
      withKeyring(o, async (kr) => {
        // Everything the re-wraps need is read first (each manifest parsed, the store opened and
        // locked): a missing or wrong file must stop the command before the keyring changes.
        for (const m of o.rewrap ?? []) await readManifest(m);
        const store = o.subjects ? await SubjectKeyStore.open(o.subjects, kr) : undefined;
        try {
          const info = await kr.rotate(id, { source: sourceOf(o) });
          // The rotation is in the keyring now: it is recorded whatever the re-wraps below do.
          const [auditEvent] = await record(log, [
            {
              type: 'key.rotated',
              data: {
                keyId: `${id}.v${info.version}`,
                previousKeyId: `${id}.v${info.version - 1}`,
                provider: info.provider,
              },
            },
          ]);
          const rewrapped: { manifest: string; keys: number }[] = [];
          try {
            for (const m of o.rewrap ?? [])
              rewrapped.push({ manifest: m, keys: await rewrapProtected(m, kr, id) });
            await store?.rewrap(id);
          } catch (e) {
            if (!(e instanceof BulwarkError)) throw e;
            throw new BulwarkError(
              e.code,
              `key ${id} was rotated to version ${info.version}${auditEvent ? ` (audit event ${auditEvent})` : ''}, but a re-wrap failed: ${e.message}; the data keys not yet re-wrapped stay under version ${info.version - 1}, which still unwraps them: do not destroy it before they are re-wrapped`,
              { cause: e, details: e.details },
            );
          }
          return { info, rewrapped, auditEvent };
        } finally {
          await store?.close();
        }
      }),
    );
    io.result(
      { key: info, rewrapped, subjects: o.subjects ?? null, ...(auditEvent ? { auditEvent } : {}) },
      () =>
        [
          `key ${id}: version ${info.version} is now primary`,
          ...rewrapped.map((r) => `re-wrapped ${r.keys} data keys of ${r.manifest} (data untouched)`),
          ...(o.subjects ? [`re-wrapped the store key of ${o.subjects}`] : []),
          ...(auditEvent ? [`audit event ${auditEvent}`] : []),
        ].join('\n'),
    );
  });

  withKeyringOptions(keys.command('list').description('list keys and versions (never key material)')).action(
    async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<SecretCliOptions>();
      await withKeyring(o, async (kr) => {
        const list = kr.list();
        io.result({ keyring: o.keyring, id: kr.id, provider: kr.providerName, keys: list }, () =>
          [`keyring ${o.keyring} (id ${kr.id}, provider ${kr.providerName})`, table(list)].join('\n'),
        );
      });
    },
  );

  for (const [name, verb] of [
    ['disable', 'refuse a version for wrapping and unwrapping until enabled'],
    ['enable', 're-enable a disabled version'],
  ] as const) {
    withKeyringOptions(
      keys
        .command(name)
        .argument('<id>', 'the key')
        .description(verb)
        .requiredOption('--key-version <n>', 'key version', intOption(1)),
    ).action(async function (this: Command, id: string) {
      const io = ioOf(this);
      const o = this.opts<SecretCliOptions & { keyVersion: number }>();
      await withKeyring(o, async (kr) => {
        const info =
          name === 'disable' ? await kr.disable(id, o.keyVersion) : await kr.enable(id, o.keyVersion);
        io.result(info, () => `key ${id} version ${o.keyVersion}: ${info.status}`);
      });
    });
  }

  withKeyringOptions(
    addAuditOption(
      keys
        .command('destroy')
        .argument('[id]', 'the key whose version --key-version destroys (not with --subject)')
        .description('destroy a key version, or erase a data subject (crypto-shredding): irreversible')
        .option('--key-version <n>', 'key version to destroy', intOption(1))
        .option('--subject <id>', 'erase this data subject instead (needs --subjects)')
        .option('--subjects <file>', 'the subject key store')
        .option('--yes', 'confirm: whatever the key protected becomes unreadable for good'),
    ),
  ).action(async function (this: Command, id: string | undefined) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & {
        keyVersion?: number;
        subject?: string;
        subjects?: string;
        yes?: boolean;
        audit?: string;
      }
    >();
    if (!o.yes) {
      throw new BulwarkError('ERR_USAGE', 'destroying is irreversible: add --yes to confirm', {
        details: { option: '--yes' },
      });
    }
    if (o.subject !== undefined) {
      if (!o.subjects)
        throw new BulwarkError('ERR_USAGE', '--subject needs --subjects <store>', {
          details: { option: '--subjects' },
        });
      const subjects = o.subjects;
      const subject = o.subject;
      await withKeyring(o, async (kr) => {
        const s = await SubjectKeyStore.open(subjects, kr);
        let had: boolean;
        try {
          had = await s.erase(subject);
        } finally {
          await s.close();
        }
        io.result({ erased: had, store: subjects }, () =>
          had
            ? `erased the data subject's keys from ${subjects}: their values are unreadable everywhere`
            : `the store had no keys for that subject (recorded as erased)`,
        );
      });
      return;
    }
    if (id === undefined || o.keyVersion === undefined) {
      throw new BulwarkError('ERR_USAGE', 'give a key id and --key-version, or --subject with --subjects', {
        details: { option: '--key-version' },
      });
    }
    const version = o.keyVersion;
    const { result: info, auditEvent } = await withAuditedKeyring(o, async (kr) => ({
      result: await kr.destroy(id, version),
      event: { type: 'key.destroyed', data: { keyId: `${id}.v${version}`, reason: 'destroyed by operator' } },
    }));
    io.result(
      auditEvent ? { ...info, auditEvent } : info,
      () =>
        `destroyed key ${id} version ${version}: data it protected can no longer be decrypted${auditEvent ? `; audit event ${auditEvent}` : ''}`,
    );
  });

  withKeyringOptions(
    keys
      .command('encrypt')
      .argument('<file>', 'the file to encrypt')
      .description('encrypt a file (framed AES-256-GCM, any size, streaming)')
      .requiredOption('--out <file>', 'encrypted output (written atomically)')
      .option('--force', 'overwrite --out if it exists')
      .option('--key <id>', 'key-encryption key', 'data')
      .option(
        '--frame-size <bytes>',
        'plaintext bytes per frame: 65536 to 1048576, a power of two',
        intOption(65536, 1048576),
        1048576,
      )
      .option('--threads <n>', THREADS_HELP, intOption(1, 256)),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & { out: string; key: string; frameSize: number; threads?: number; force?: boolean }
    >();
    await checkOutputPath(o.out, { force: o.force, inputs: [file, ...keyringInputs(o)] });
    await withKeyring(o, async (kr) => {
      const bytes = await encryptFile(file, o.out, kr, {
        keyId: o.key,
        frameSize: o.frameSize,
        ...(o.threads !== undefined ? { threads: o.threads } : {}),
      });
      io.result(
        { input: file, output: o.out, bytes },
        () => `encrypted ${file} -> ${o.out} (${bytes} bytes)`,
      );
    });
  });

  withKeyringOptions(
    keys
      .command('decrypt')
      .argument('<file>', 'the encrypted file')
      .description('decrypt a file; the output appears only if every frame authenticated')
      .requiredOption('--out <file>', 'plaintext output (mode 0600, written atomically)')
      .option('--force', 'overwrite --out if it exists')
      .option('--threads <n>', THREADS_HELP, intOption(1, 256)),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<SecretCliOptions & { out: string; threads?: number; force?: boolean }>();
    await checkOutputPath(o.out, { force: o.force, inputs: [file, ...keyringInputs(o)] });
    await withKeyring(o, async (kr) => {
      const bytes = await decryptFile(file, o.out, kr, o.threads !== undefined ? { threads: o.threads } : {});
      io.result(
        { input: file, output: o.out, bytes },
        () => `decrypted ${file} -> ${o.out} (${bytes} bytes)`,
      );
    });
  });
}
