import { lstat } from 'node:fs/promises';
import type { Command } from 'commander';
import { BulwarkError, fileDigest } from '../../core/index.js';
import { loadSchema } from '../../data/index.js';
import {
  manifestPathOf,
  type ProtectOptions,
  protectCsv,
  readManifest,
  reencryptCsv,
  revealCsv,
  SubjectKeyStore,
} from '../../protect/index.js';
import { addAuditOption, record, withOperationLog } from '../audit-record.js';
import { checkOutputPath, listOption } from '../options.js';
import { ioOf } from '../output.js';
import { keyringInputs, openKeyringFromOptions, type SecretCliOptions, withKeyringOptions } from './keys.js';

const FORCE_HELP = 'overwrite --out (and its manifest) if it exists';

/**
 * Checks a protected CSV output and the manifest written beside it before any work: neither may be an
 * input of the command (the data, its manifest, the schema, the keyring, the passphrase file, the subject
 * key store), whatever --force says, and neither replaces an existing file without --force. Replacing
 * the input manifest would lose the only copy of the wrapped data keys: the protected data with it.
 */
async function checkProtectedOutput(
  out: string,
  manifest: string | undefined,
  force: boolean | undefined,
  inputs: readonly (string | undefined)[],
): Promise<void> {
  await checkOutputPath(out, { force, inputs });
  if (manifest !== undefined)
    await checkOutputPath(manifest, {
      force,
      option: '--manifest',
      inputs: [...inputs, out],
    });
}

/**
 * Refuses to protect a file that already has a protection manifest beside it (FILE.bulwark.json): its
 * protected cells would be encrypted a second time under a new manifest that says nothing of the first,
 * and one reveal would give back ciphertext that reads like data. `--allow-protected-input` asks for
 * that chain on purpose (two reveals, outer manifest first). Checked by the path, before the keyring
 * is opened or anything is read: a manifest kept elsewhere (`--manifest`) is not seen.
 */
async function checkNotProtected(file: string, allow: boolean | undefined): Promise<void> {
  const manifest = manifestPathOf(file);
  const found = await lstat(manifest).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return false;
      throw e;
    },
  );
  if (found && allow !== true)
    throw new BulwarkError(
      'ERR_DATA_ALREADY_PROTECTED',
      `${file} is already protected (its manifest ${manifest} is beside it): reveal it first, or give --allow-protected-input to protect it again under a new manifest`,
      { details: { file, manifest, option: '--allow-protected-input' } },
    );
}

interface ProtectCli extends SecretCliOptions {
  schema: string;
  out: string;
  key: string;
  columns?: string[];
  deterministic?: string[];
  blindIndex?: string[];
  rowKey?: string;
  subjectColumn?: string;
  subjects?: string;
  allowExtraColumns?: boolean;
  manifest?: string;
  force?: boolean;
  allowProtectedInput?: boolean;
}

interface RevealCli extends SecretCliOptions {
  out: string;
  columns?: string[];
  manifest?: string;
  subjects?: string;
  erased: 'blank' | 'fail';
  force?: boolean;
}

/** `bulwark data protect|reveal|reencrypt`: field-level encryption of CSV files, streaming. */
export function registerDataProtectCommands(data: Command): void {
  withKeyringOptions(
    addAuditOption(
      data
        .command('protect')
        .argument('<file>', 'the CSV file whose personal columns to encrypt')
        .description("encrypt a CSV file's personal columns (from the schema), keeping every other column")
        .requiredOption('--schema <file>', 'schema YAML (personal and sensitive fields are protected)')
        .requiredOption('--out <file>', 'protected CSV (its manifest goes to OUT.bulwark.json)')
        .option('--key <id>', 'key-encryption key for the data keys', 'data')
        .option('--columns <list>', 'protect exactly these columns instead', listOption(String))
        .option(
          '--deterministic <list>',
          'columns encrypted deterministically (AES-SIV): joinable by equality',
          listOption(String),
        )
        .option(
          '--blind-index <list>',
          'columns that also get an HMAC blind index column NAME_bidx',
          listOption(String),
        )
        .option('--row-key <column>', 'a stable row id bound into each value (else the row number)')
        .option('--subject-column <column>', 'per-subject keys: the column naming the data subject')
        .option('--subjects <file>', 'the subject key store (created if missing)')
        .option('--allow-extra-columns', 'accept columns the schema does not declare (kept as they are)')
        .option('--manifest <file>', 'where to write the manifest (default OUT.bulwark.json)')
        .option(
          '--allow-protected-input',
          'protect FILE even though FILE.bulwark.json says it is already protected (its cells are encrypted again)',
        )
        .option('--force', FORCE_HELP),
    ),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<ProtectCli & { audit?: string }>();
    await checkNotProtected(file, o.allowProtectedInput);
    await checkProtectedOutput(o.out, o.manifest ?? manifestPathOf(o.out), o.force, [
      file,
      o.schema,
      o.subjects,
      o.audit,
      ...keyringInputs(o),
    ]);
    const schema = await loadSchema(o.schema);
    // Opened before anything is written: a log that cannot be opened refuses the run.
    await withOperationLog(o.audit, async (log) => {
      const kr = await openKeyringFromOptions(o);
      let store: SubjectKeyStore | undefined;
      try {
        const opts: ProtectOptions = {
          schema,
          keyring: kr,
          keyId: o.key,
          allowExtraColumns: o.allowExtraColumns === true,
        };
        if (o.columns) opts.columns = o.columns;
        if (o.deterministic) opts.deterministic = o.deterministic;
        if (o.blindIndex) opts.blindIndex = o.blindIndex;
        if (o.rowKey) opts.rowKey = o.rowKey;
        if (o.manifest) opts.manifestPath = o.manifest;
        if (o.subjectColumn || o.subjects) {
          if (!o.subjectColumn || !o.subjects) {
            throw new BulwarkError('ERR_USAGE', '--subject-column and --subjects go together', {
              details: { option: '--subjects' },
            });
          }
          store = await SubjectKeyStore.openOrCreate(o.subjects, kr, { keyId: o.key });
          opts.subjects = { column: o.subjectColumn, store };
        }
        // Progress on a terminal only, as every command's bar (src/cli/progress.ts): scripts stay clean.
        if (io.interactive) opts.onProgress = (rows) => io.note(`  ${rows} rows`);
        const r = await protectCsv(file, o.out, opts);
        const m = log ? await readManifest(r.manifest) : undefined;
        const auditIds = await record(
          log,
          m
            ? [
                {
                  type: 'dataset.protected',
                  data: {
                    datasetDigest: await fileDigest(r.output),
                    sourceDigest: await fileDigest(file),
                    schemaDigest: await fileDigest(o.schema),
                    protectedFields: r.columns.map((c) => c.name),
                    keyIds: [...new Set(m.deks.map((d) => `${d.wrapped.key}.v${d.wrapped.version}`))],
                    rows: r.rows,
                  },
                },
              ]
            : [],
        );
        io.result(auditIds.length > 0 ? { ...r, auditEvent: auditIds[0] } : r, () =>
          [
            `protected ${r.rows} rows of ${file} -> ${r.output} (manifest ${r.manifest})`,
            ...r.columns.map(
              (c) =>
                `  ${c.name}: ${c.mode}${c.keyed === 'subject' ? ', per-subject key' : ''}${c.blindIndex ? `, blind index ${c.blindIndex}` : ''} (${c.values} values, ${c.missing} missing)`,
            ),
            `  kept as they were: ${r.kept.join(', ')}`,
            `  data keys: ${r.dataKeys}${r.subjects !== undefined ? `; subjects: ${r.subjects}` : ''}`,
            ...(auditIds.length > 0 ? [`  audit: dataset.protected recorded as event ${auditIds[0]}`] : []),
          ].join('\n'),
        );
      } finally {
        await store?.close();
        await kr.close();
      }
    });
  });

  withKeyringOptions(
    data
      .command('reveal')
      .argument('<file>', 'the protected CSV file')
      .description('decrypt a protected CSV file (all protected columns, or some); output mode 0600')
      .requiredOption('--out <file>', 'decrypted CSV (written only if every value authenticated)')
      .option('--columns <list>', 'decrypt only these columns', listOption(String))
      .option('--manifest <file>', 'the manifest (default FILE.bulwark.json)')
      .option('--subjects <file>', 'the subject key store (for per-subject keys)')
      .option('--erased <what>', 'values of erased subjects: blank (write empty) or fail', 'blank')
      .option('--force', 'overwrite --out if it exists'),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<RevealCli>();
    if (o.erased !== 'blank' && o.erased !== 'fail') {
      throw new BulwarkError('ERR_USAGE', `--erased: expected blank or fail, got "${o.erased}"`, {
        details: { option: '--erased' },
      });
    }
    await checkProtectedOutput(o.out, undefined, o.force, [
      file,
      o.manifest ?? manifestPathOf(file),
      o.subjects,
      ...keyringInputs(o),
    ]);
    const kr = await openKeyringFromOptions(o);
    let store: SubjectKeyStore | undefined;
    try {
      if (o.subjects) store = await SubjectKeyStore.open(o.subjects, kr, { readOnly: true });
      const r = await revealCsv(file, o.out, {
        keyring: kr,
        erased: o.erased,
        ...(o.columns ? { columns: o.columns } : {}),
        ...(o.manifest ? { manifestPath: o.manifest } : {}),
        ...(store ? { subjects: store } : {}),
      });
      io.result(r, () =>
        [
          `revealed ${r.revealed.join(', ')} in ${r.rows} rows -> ${r.output}`,
          ...(r.erasedRows > 0
            ? [`  ${r.erasedRows} rows belong to erased subjects: their values are empty`]
            : []),
        ].join('\n'),
      );
    } finally {
      await store?.close();
      await kr.close();
    }
  });

  withKeyringOptions(
    data
      .command('reencrypt')
      .argument('<file>', 'the protected CSV file')
      .description('re-encrypt a protected CSV file under new data keys (one streaming pass)')
      .requiredOption('--out <file>', 'the re-encrypted CSV')
      .option('--key <id>', 'key-encryption key for the new data keys')
      .option('--manifest <file>', 'the manifest (default FILE.bulwark.json)')
      .option('--subjects <file>', 'the subject key store (for per-subject keys)')
      .option('--force', FORCE_HELP),
  ).action(async function (this: Command, file: string) {
    const io = ioOf(this);
    const o = this.opts<
      SecretCliOptions & { out: string; key?: string; manifest?: string; subjects?: string; force?: boolean }
    >();
    await checkProtectedOutput(o.out, manifestPathOf(o.out), o.force, [
      file,
      o.manifest ?? manifestPathOf(file),
      o.subjects,
      ...keyringInputs(o),
    ]);
    const kr = await openKeyringFromOptions(o);
    let store: SubjectKeyStore | undefined;
    try {
      if (o.subjects) store = await SubjectKeyStore.open(o.subjects, kr);
      const r = await reencryptCsv(file, o.out, {
        keyring: kr,
        ...(o.key ? { keyId: o.key } : {}),
        ...(o.manifest ? { manifestPath: o.manifest } : {}),
        ...(store ? { subjects: store } : {}),
      });
      io.result(
        r,
        () =>
          `re-encrypted ${r.rows} rows -> ${r.output} (new dataset id ${r.dataset}, manifest ${r.manifest})`,
      );
    } finally {
      await store?.close();
      await kr.close();
    }
  });
}
