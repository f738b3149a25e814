import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type {
  AuditLog,
  AuditStoreSpec,
  ConsistencyBundle,
  InclusionBundle,
  NoteSigner,
} from '../../audit/index.js';
import { BulwarkError, fsError, warnIfWorldReadable, writeFileAtomic } from '../../core/index.js';
import { auditStoreSpec, DEFAULT_AUDIT_STORE } from '../audit-record.js';
import { checkOutputPath, intOption, locationOrigin } from '../options.js';
import { type Io, ioOf } from '../output.js';
import { startProgress } from '../progress.js';

/** The audit library, loaded on first use so other commands do not pay for pg and better-sqlite3. */
const lib = () => import('../../audit/index.js');

interface StoreOpts {
  store?: string;
  pgSchema?: string;
}

/** `--store`: a SQLite file, or a `postgres://` URL. */
function storeSpec(o: StoreOpts, create: boolean): AuditStoreSpec {
  return auditStoreSpec(
    storeSpecPath(o),
    create,
    o.pgSchema,
    locationOrigin('--store', o.store !== undefined, 'BULWARK_AUDIT_STORE'),
  );
}

/** The `--store` as given (a SQLite file or a URL), for the output-path check. */
function storeSpecPath(o: StoreOpts): string {
  return o.store ?? process.env['BULWARK_AUDIT_STORE'] ?? DEFAULT_AUDIT_STORE;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT')
      throw new BulwarkError('ERR_FILE_NOT_FOUND', `${what} not found: ${path}`, { details: { path } });
    throw fsError(e, path, `cannot read the ${what}`);
  }
}

/**
 * A checkpoint the auditor kept: a signed note file (`audit checkpoint --out`), or a proof bundle
 * they were given, whose newest checkpoint is the one they saw (`newCheckpoint` of a consistency
 * bundle, `checkpoint` of an inclusion proof), so last month's bundle is next month's starting point.
 */
function readHeldCheckpoint(path: string, option: string): string {
  const text = readText(path, 'checkpoint file');
  if (!text.trimStart().startsWith('{')) return text;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BulwarkError(
      'ERR_AUDIT_CHECKPOINT_INVALID',
      `${option} ${path}: neither a signed note nor JSON`,
    );
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const note =
    o['format'] === 'bulwark-audit-consistency/1'
      ? o['newCheckpoint']
      : o['format'] === 'bulwark-audit-inclusion/1'
        ? o['checkpoint']
        : undefined;
  if (typeof note !== 'string')
    throw new BulwarkError(
      'ERR_AUDIT_CHECKPOINT_INVALID',
      `${option} ${path}: JSON that is not a proof bundle of "bulwark audit prove" (expected a signed checkpoint note or a bundle)`,
    );
  return note;
}

/** `audit verify`'s line on training records: who signed them (each signature checked), how many not. */
function trainingRecordsLine(
  t: { signed: { key: string; records: number }[]; unsigned: number },
  keyName: (vkey: string) => string,
): string[] {
  const signed = t.signed.reduce((n, k) => n + k.records, 0);
  if (signed + t.unsigned === 0) return [];
  const by = t.signed.map((k) => `${k.records} by ${keyName(k.key)}`);
  return [
    `training records: ${signed} signed by their writer${by.length > 0 ? ` (${by.join(', ')}; each signature verified)` : ''}, ${t.unsigned} unsigned (any writer of the log could have added those)`,
  ];
}

/** A signing key file (`PRIVATE+KEY+...`, as written by `audit keygen`). */
export async function loadSigner(path: string): Promise<NoteSigner> {
  warnIfWorldReadable(path, 'signing key file');
  return (await lib()).parseSignerKey(readText(path, 'signing key file'));
}

/**
 * `--key`: a public key `name+id+key`, or a file holding one (checked, with readable file errors). A
 * value with no `+` cannot be a key, so it is read as a file: a missing `log.key.pub` is
 * ERR_FILE_NOT_FOUND naming it, not a key-format error.
 */
export async function loadVerifierKey(v: string): Promise<string> {
  const text = existsSync(v) || !v.includes('+') ? readText(v, 'public key file').trim() : v.trim();
  (await lib()).parseVerifierKey(text);
  return text;
}

function nonEmpty(v: string): string {
  if (v.trim() === '') throw new InvalidArgumentError('expected a non-empty value');
  return v;
}

/** Writes a proof bundle to `out` (atomically) with a note and a result, or prints it on stdout. */
async function writeBundle(
  io: Io,
  out: string | undefined,
  bundle: InclusionBundle | ConsistencyBundle,
  facts: { what: string; noteOnStdout?: boolean } & Record<string, unknown>,
): Promise<void> {
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  const { what, noteOnStdout, ...rest } = facts;
  if (out) {
    const path = resolve(out);
    await writeFileAtomic(path, text);
    io.note(`${what} written to ${out}`);
    io.result({ out: path, ...rest }, () => path);
  } else {
    // The note goes to stderr, so stdout stays the bundle alone.
    if (noteOnStdout) io.note(what);
    process.stdout.write(text);
  }
}

/**
 * `audit verify --proof` for a consistency bundle: checked with the key only, from the checkpoint the
 * auditor holds (`--checkpoint`) when given.
 */
async function verifyConsistencyProof(
  io: Io,
  bundle: unknown,
  keyArg: string,
  held: string | undefined,
): Promise<void> {
  const key = await loadVerifierKey(keyArg);
  const v = (await lib()).verifyConsistencyBundle(
    bundle,
    key,
    held === undefined ? {} : { held: readHeldCheckpoint(held, '--checkpoint') },
  );
  if (!v.held)
    io.note(
      `note: this shows that the log's tree of size ${v.newer.size} extends its tree of size ${v.older.size}; check that the old checkpoint is the one you kept (pass it with --checkpoint)`,
    );
  const b64 = (b: Buffer) => b.toString('base64');
  io.result(
    {
      ok: true,
      kind: 'consistency',
      origin: v.newer.origin,
      oldSize: v.older.size,
      oldRoot: b64(v.older.root),
      newSize: v.newer.size,
      newRoot: b64(v.newer.root),
      heldCheckpoint: v.held !== undefined,
      // The log's key was rotated on the way: each hand-over was signed by the key before it.
      ...(v.key !== key ? { newKey: v.key } : {}),
    },
    () =>
      [
        `OK: ${v.newer.origin} at tree size ${v.newer.size} extends its tree of size ${v.older.size}${v.held ? ' (the checkpoint you hold)' : ''}`,
        `old root ${b64(v.older.root)}`,
        `new root ${b64(v.newer.root)}`,
        ...(v.key !== key
          ? [
              `the log's key was handed over on the way (each hand-over signed by the key before it); trust its new key from now on: ${v.key}`,
            ]
          : []),
      ].join('\n'),
  );
}

async function withLog<T>(
  spec: AuditStoreSpec,
  signer: NoteSigner | undefined,
  fn: (log: AuditLog) => Promise<T>,
) {
  const log = await (await lib()).AuditLog.open({ store: spec, ...(signer ? { signer } : {}) });
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

/**
 * `bulwark audit verify|prove|tail|checkpoint|lineage|keygen|rotate-key`: the tamper-evident audit log
 * (see docs/audit.md).
 */
export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description(
      'the tamper-evident audit log: verify it, prove an event, follow lineage, sign checkpoints, rotate its key',
    )
    .option(
      '--store <file|url>',
      `the log: a SQLite file or a postgres:// URL (env BULWARK_AUDIT_STORE; default ${DEFAULT_AUDIT_STORE})`,
    )
    .option('--pg-schema <name>', 'the PostgreSQL schema holding the log (default bulwark_audit)');
  const storeOf = (cmd: Command) => cmd.optsWithGlobals<StoreOpts>();

  audit
    .command('keygen')
    .description('create an Ed25519 checkpoint signing key (signed-note format) and print its public key')
    .requiredOption('--name <origin>', 'the log origin, e.g. bulwark.example/audit', nonEmpty)
    .requiredOption('--out <file>', 'where to write the private key (FILE.pub gets the public key)', nonEmpty)
    .action(async function (this: Command) {
      const o = this.opts<{ name: string; out: string }>();
      const io = ioOf(this);
      const out = resolve(o.out);
      // Both files checked before either is written (an existing FILE.pub was silently replaced).
      await checkOutputPath(out);
      await checkOutputPath(`${out}.pub`);
      const k = (await lib()).generateSignerKey(o.name);
      await writeFileAtomic(out, `${k.skey}\n`, { mode: 0o600 });
      await writeFileAtomic(`${out}.pub`, `${k.vkey}\n`);
      io.result({ name: o.name, publicKey: k.vkey, keyFile: out, publicKeyFile: `${out}.pub` }, () =>
        [`Signing key: ${out} (keep it secret)`, `Public key:  ${out}.pub`, k.vkey].join('\n'),
      );
    });

  audit
    .command('verify')
    .description('recompute the whole log and check every checkpoint; or check one inclusion proof (--proof)')
    .option('--key <vkey|file>', 'the log public key to trust (default: the one recorded in the log)')
    .option(
      '--proof <file>',
      'check this bundle from "audit prove" (an inclusion or a consistency proof) with --key only, without the log',
    )
    .option('--schema', "also check every entry's data against its event type's schema (slower)")
    .option(
      '--checkpoint <file>',
      'a signed checkpoint of this log you kept earlier ("audit checkpoint --out", or a bundle you were given); the log must still hold its tree (repeatable); with a consistency --proof, the proof must start from it',
      (v: string, prev: string[] = []) => [...prev, nonEmpty(v)],
    )
    .action(async function (this: Command) {
      const o = this.opts<{ key?: string; proof?: string; schema?: boolean; checkpoint?: string[] }>();
      const io = ioOf(this);
      if (o.proof) {
        if (!o.key) throw new BulwarkError('ERR_USAGE', '--proof needs --key (the log public key to trust)');
        let bundle: unknown;
        try {
          bundle = JSON.parse(readText(o.proof, 'proof file'));
        } catch (e) {
          if (e instanceof BulwarkError) throw e;
          throw new BulwarkError('ERR_AUDIT_PROOF_INVALID', `${o.proof}: not JSON`);
        }
        const isConsistency =
          typeof bundle === 'object' &&
          bundle !== null &&
          (bundle as { format?: unknown }).format === 'bulwark-audit-consistency/1';
        if (o.checkpoint && (!isConsistency || o.checkpoint.length > 1))
          throw new BulwarkError(
            'ERR_USAGE',
            isConsistency
              ? '--checkpoint: give one with a consistency --proof (the checkpoint the proof must start from)'
              : '--checkpoint applies to a log (--store) or a consistency proof, not to an inclusion --proof',
          );
        if (isConsistency) return verifyConsistencyProof(io, bundle, o.key, o.checkpoint?.[0]);
        const v = (await lib()).verifyInclusionBundle(bundle, await loadVerifierKey(o.key));
        io.result(
          {
            ok: true,
            index: v.entry.index,
            id: v.entry.id,
            type: v.entry.type,
            treeSize: v.checkpoint.size,
            origin: v.checkpoint.origin,
          },
          () =>
            `OK: event ${v.entry.id} (#${v.entry.index}, ${v.entry.type}) is in ${v.checkpoint.origin} at tree size ${v.checkpoint.size}`,
        );
        return;
      }
      const publicKey = o.key ? await loadVerifierKey(o.key) : undefined;
      // Read before the log is opened: a missing file is the auditor's mistake, not the log's.
      const held = (o.checkpoint ?? []).map((f) => readHeldCheckpoint(f, '--checkpoint'));
      const report = await withLog(storeSpec(storeOf(this), false), undefined, async (log) => {
        const { size } = await log.head();
        const bar = startProgress(io, 'verify', size, 'entries');
        try {
          return await log.verify({
            ...(publicKey ? { publicKey } : {}),
            checkpoints: held,
            schema: o.schema === true,
            onProgress: (d) => bar.update(d),
          });
        } finally {
          bar.stop();
        }
      });
      if (report.keySource === 'log' && report.checkpoints > 0)
        io.note(
          'note: checkpoints were checked with the key recorded in the log; pass --key to check them against a key you trust',
        );
      if (report.signedSize < report.entries)
        io.note(
          `note: entries #${report.signedSize} to #${report.entries - 1} are not covered by a signed checkpoint yet: whoever can write the database can still change them unnoticed (sign one with "audit checkpoint --signing-key")`,
        );
      if (report.unfinishedRotations.length > 0)
        io.note(
          `note: key rotation entries ${report.unfinishedRotations.map((i) => `#${i}`).join(', ')} were never completed by a hand-over checkpoint signed by both keys: the keys they name sign nothing of this log (run "audit rotate-key" again to finish a rotation)`,
        );
      if (report.heldCheckpoints === 0)
        io.note(
          'note: a log rolled back or replaced as a whole, or a fork shown only to you, is consistent in itself; pass --checkpoint with a checkpoint of this log you kept to detect it',
        );
      const { keyName } = await lib();
      io.result({ ok: true, ...report }, () =>
        [
          `OK: ${report.entries} entries (${report.signedSize} under a signed checkpoint), ${report.checkpoints} signed checkpoints${report.heldCheckpoints > 0 ? ` and ${report.heldCheckpoints} you hold` : ''}, ${report.nodesChecked} cached subtrees verified (${report.seconds.toFixed(2)} s)`,
          `origin ${report.origin}, root ${report.root}`,
          ...(report.keys > 1 ? [`${report.keys} checkpoint keys, each hand-over signed by both keys`] : []),
          ...trainingRecordsLine(report.trainingRecords, keyName),
        ].join('\n'),
      );
    });

  audit
    .command('prove')
    .description(
      'print an inclusion proof of an event against a signed checkpoint, or (--from) a consistency proof that the tree extends a checkpoint you kept (JSON)',
    )
    .argument('[event-id]', 'the event id (an inclusion proof)')
    .option(
      '--from <checkpoint>',
      'instead, prove that the log extends this checkpoint (a signed note, or the last bundle you were given): RFC 9162 consistency proof',
    )
    .option(
      '--size <n>',
      'prove against the stored checkpoint of this tree size (default: the latest)',
      intOption(1, Number.MAX_SAFE_INTEGER),
    )
    .option(
      '--signing-key <file>',
      'sign a checkpoint first: when none covers the event, or (--from) when the tree has grown beyond the latest one',
    )
    .option('--out <file>', 'write the proof to a file instead of stdout')
    .option('--force', 'overwrite --out if it exists')
    .action(async function (this: Command, eventId: string | undefined) {
      const o = this.opts<{
        from?: string;
        size?: number;
        signingKey?: string;
        out?: string;
        force?: boolean;
      }>();
      const io = ioOf(this);
      if ((eventId === undefined) === (o.from === undefined))
        throw new BulwarkError(
          'ERR_USAGE',
          eventId === undefined
            ? 'prove needs an event id (inclusion proof) or --from CHECKPOINT (consistency proof)'
            : 'give an event id or --from, not both',
        );
      if (o.out)
        await checkOutputPath(o.out, {
          force: o.force,
          inputs: [storeSpecPath(storeOf(this)), o.signingKey, o.from],
        });
      // Read before the log is opened: a missing file is the auditor's mistake, not the log's.
      const from = o.from === undefined ? undefined : readHeldCheckpoint(o.from, '--from');
      const signer = o.signingKey ? await loadSigner(o.signingKey) : undefined;
      if (from !== undefined) {
        const proved = await withLog(storeSpec(storeOf(this), false), signer, async (log) => {
          try {
            return await log.proveConsistency(from, o.size);
          } catch (e) {
            if (
              e instanceof BulwarkError &&
              e.code === 'ERR_INVALID_ARGUMENT' &&
              (e.details as { parameter?: unknown } | undefined)?.parameter === 'treeSize'
            )
              throw new BulwarkError('ERR_USAGE', `--size ${e.message.replace(/^treeSize: /, '')}`, {
                details: { option: '--size' },
              });
            throw e;
          }
        });
        const { bundle, older, newer, signed, headSize } = proved;
        const [oldSize, newSize] = [older.size, newer.size];
        const which = signed ? 'a checkpoint signed now' : 'a stored checkpoint';
        // Without --signing-key the proof ends at the latest stored checkpoint: say what it leaves out.
        if (o.size === undefined && headSize > newSize)
          io.note(
            `note: the log holds ${headSize - newSize} entr${headSize - newSize === 1 ? 'y' : 'ies'} beyond tree size ${newSize} that this proof does not cover; add --signing-key to sign a checkpoint of them first`,
          );
        await writeBundle(io, o.out, bundle, {
          oldSize,
          newSize,
          newCheckpoint: signed ? 'signed' : 'stored',
          what: `consistency proof from tree size ${oldSize} to ${newSize} (${which})`,
          noteOnStdout: true,
        });
        return;
      }
      const bundle: InclusionBundle = await withLog(storeSpec(storeOf(this), false), signer, (log) =>
        log.prove(eventId as string, o.size),
      );
      await writeBundle(io, o.out, bundle, {
        index: bundle.index,
        treeSize: bundle.treeSize,
        what: `proof of #${bundle.index} at tree size ${bundle.treeSize}`,
      });
    });

  audit
    .command('tail')
    .description('print the last events of the log')
    .option('-n, --count <n>', 'how many', intOption(1, 100_000), 20)
    .action(async function (this: Command) {
      const o = this.opts<{ count: number }>();
      const io = ioOf(this);
      const entries = await withLog(storeSpec(storeOf(this), false), undefined, (log) => log.tail(o.count));
      const { describeEvent } = await lib();
      io.result(entries, () =>
        entries.length === 0
          ? '(the log is empty)'
          : entries
              .map((e) => `#${e.index}  ${e.time}  ${e.type.padEnd(17)} ${e.id}  ${describeEvent(e)}`)
              .join('\n'),
      );
    });

  audit
    .command('checkpoint')
    .description(
      'sign and store a checkpoint of the current tree (with --signing-key), or print the latest one',
    )
    .option('--signing-key <file>', 'the log signing key (from "audit keygen"); creates the log if it is new')
    .option('--out <file>', 'also write the checkpoint note to this file')
    .option('--force', 'overwrite --out if it exists')
    .action(async function (this: Command) {
      const o = this.opts<{ signingKey?: string; out?: string; force?: boolean }>();
      const io = ioOf(this);
      if (o.out)
        await checkOutputPath(o.out, {
          force: o.force,
          inputs: [storeSpecPath(storeOf(this)), o.signingKey],
        });
      const signer = o.signingKey ? await loadSigner(o.signingKey) : undefined;
      const cp = await withLog(storeSpec(storeOf(this), signer !== undefined), signer, async (log) => {
        if (signer) return log.checkpoint();
        const all = await log.checkpoints();
        const last = all[all.length - 1];
        if (!last)
          throw new BulwarkError(
            'ERR_AUDIT_CHECKPOINT_MISSING',
            'the log has no checkpoint yet: pass --signing-key to write one',
          );
        return last;
      });
      if (o.out) await writeFileAtomic(resolve(o.out), cp.note);
      io.result({ origin: cp.origin, size: cp.size, root: cp.root.toString('base64'), note: cp.note }, () =>
        cp.note.trimEnd(),
      );
    });

  audit
    .command('rotate-key')
    .description(
      'hand the log over to a new checkpoint signing key: a log.key-rotated entry, then a checkpoint signed by both keys; the old key signs nothing more',
    )
    .requiredOption('--signing-key <file>', 'the key in force (from "audit keygen")', nonEmpty)
    .requiredOption(
      '--new-key <file>',
      'the new signing key (from "audit keygen --name" with the log\'s origin)',
      nonEmpty,
    )
    .option('--out <file>', 'also write the hand-over checkpoint (signed by both keys) to this file')
    .option('--force', 'overwrite --out if it exists')
    .addHelpText(
      'after',
      `
A process that still signs checkpoints with the old key (a gateway with audit.signer) signs nothing
after the hand-over: give it the new key (the gateway: write it to audit.signer and send SIGHUP). Give
auditors the hand-over note with the new public key: it is signed by the key they trust and by the new
one.
See docs/audit.md, "Rotating the log's key".`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{ signingKey: string; newKey: string; out?: string; force?: boolean }>();
      const io = ioOf(this);
      if (o.out)
        await checkOutputPath(o.out, {
          force: o.force,
          inputs: [storeSpecPath(storeOf(this)), o.signingKey, o.newKey],
        });
      const signer = await loadSigner(o.signingKey);
      const next = await loadSigner(o.newKey);
      const r = await withLog(storeSpec(storeOf(this), false), signer, (log) => log.rotateKey(next));
      if (o.out) await writeFileAtomic(resolve(o.out), r.handover.note);
      const { keyName } = await lib();
      io.result(
        {
          origin: r.handover.origin,
          size: r.handover.size,
          root: r.handover.root.toString('base64'),
          previousKey: r.previousKey,
          newKey: r.newKey,
          note: r.handover.note,
        },
        () =>
          [
            `Key rotated: ${keyName(r.previousKey)} → ${keyName(r.newKey)} at tree size ${r.handover.size}`,
            'Hand-over checkpoint (signed by both keys):',
            r.handover.note.trimEnd(),
          ].join('\n'),
      );
    });

  audit
    .command('lineage')
    .description('walk back from an event (a prediction) to the model, training run, dataset and keys')
    .argument('<event-id>', 'the event id')
    .action(async function (this: Command, eventId: string) {
      const io = ioOf(this);
      const lin = await withLog(storeSpec(storeOf(this), false), undefined, (log) => log.lineage(eventId));
      const { describeEvent, oneLine } = await lib();
      io.result(lin, () =>
        [
          ...lin.nodes.map(
            (n) =>
              `${'  '.repeat(n.depth)}${n.depth > 0 ? '← ' : ''}#${n.entry.index} ${n.entry.type}: ${describeEvent(n.entry)}${
                n.via ? `  [via ${oneLine(n.via.length > 40 ? `${n.via.slice(0, 40)}…` : n.via)}]` : ''
              }`,
          ),
          ...lin.unresolved.map((u) => `  (no event produces ${oneLine(u.ref)}, used by #${u.usedBy})`),
        ].join('\n'),
      );
    });
}
