import { copyFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  type AuditEntry,
  AuditLog,
  describeEvent,
  generateSignerKey,
  type LineageNode,
  verifyInclusionBundle,
} from '../../audit/index.js';
import { BulwarkError, fileDigest, isBulwarkError, writeFileAtomic } from '../../core/index.js';
import type { Block } from '../../report/index.js';
import type { DemoStage, DemoState, StageResult } from '../stage.js';

const ORIGIN = 'bulwark.demo/audit';
const auditDir = (outDir: string) => join(outDir, 'audit');

/** What the recorder has already logged from the shared state, so each artefact is logged once. */
const logged = new WeakMap<AuditLog, Set<string>>();

/**
 * Called by the demo runner after each stage while `state.audit` is open: appends the events the
 * stage returned, events for artefacts that appeared in the shared state (the generated dataset),
 * and a `pipeline.stage` event with the stage's summary. A failing append fails the stage (fail
 * closed: the demo does not go on without its record).
 */
export async function recordStage(
  state: DemoState,
  stage: { id: string },
  result: StageResult,
  seconds: number,
): Promise<void> {
  const log = state.audit;
  if (!log) return;
  const done = logged.get(log) ?? new Set<string>();
  logged.set(log, done);
  for (const e of result.events ?? []) await log.append(e);
  // The generated transactions are the root of the lineage: logged once, when the data and its
  // parsed form are both in the state. Later datasets (the protected copy) are recorded by the stages
  // that make them, through `StageResult.events`, with what only they know (keys, fields).
  if (state.dataPath && state.dataset && !done.has('raw-dataset')) {
    done.add('raw-dataset');
    await log.append({
      type: 'dataset.created',
      data: {
        datasetDigest: await fileDigest(state.dataPath),
        source: 'bulwark synthetic card transactions',
        rows: state.dataset.rowCount,
        columns: state.dataset.columnNames.length,
      },
    });
  }
  const summary: Record<string, string | number | boolean> = {};
  // Summaries are free-form: keep them within the event schema (short strings, finite numbers).
  for (const [k, v] of Object.entries(result.summary ?? {}))
    summary[k.slice(0, 256)] =
      typeof v === 'string' && v.length > 200
        ? `${v.slice(0, 200)}…`
        : typeof v === 'number' && !Number.isFinite(v)
          ? String(v)
          : v;
  await log.append({
    type: 'pipeline.stage',
    data: { pipeline: 'demo', stage: stage.id, status: result.status ?? 'ok', seconds, summary },
  });
}

/** First stage: a fresh audit log for this run, with a new checkpoint signing key. */
export const auditOpenStage: DemoStage = {
  id: 'audit-open',
  title: 'Audit log opened',
  async run(ctx) {
    const dir = auditDir(ctx.options.outDir);
    // The demo folder is regenerated on every run: start a new log rather than mixing runs.
    for (const f of ['audit.db', 'audit.db-wal', 'audit.db-shm', 'log.key', 'log.key.pub', 'tampered.db'])
      await rm(join(dir, f), { force: true });
    const key = generateSignerKey(ORIGIN);
    // createFolders: audit/ is the demo's own layout; the log below is opened in it, and the SQLite
    // store (like every writer) does not create a missing folder.
    await writeFileAtomic(join(dir, 'log.key'), `${key.skey}\n`, { mode: 0o600, createFolders: true });
    await writeFileAtomic(join(dir, 'log.key.pub'), `${key.vkey}\n`);
    const log = await AuditLog.open({
      store: { kind: 'sqlite', path: join(dir, 'audit.db') },
      origin: ORIGIN,
      signer: key.signer,
    });
    ctx.state.audit = log;
    await log.append({
      type: 'key.created',
      data: {
        keyId: key.vkey.split('+').slice(0, 2).join('+'),
        algorithm: 'Ed25519',
        provider: 'file',
        purpose: 'audit checkpoints',
      },
    });
    return {
      summary: { origin: ORIGIN, publicKey: key.vkey },
      blocks: [
        {
          kind: 'text',
          text:
            'Every stage of this demo is recorded in a tamper-evident transparency log (RFC 9162 Merkle tree, ' +
            'SQLite in WAL mode with fsync per group commit). Its checkpoints are signed with a new Ed25519 key ' +
            'in the C2SP signed-note format; the public key below is all an auditor needs to check them.',
        },
        {
          kind: 'facts',
          facts: [
            ['origin', ORIGIN],
            ['public key', key.vkey],
            ['log', 'audit/audit.db'],
          ],
        },
      ],
    };
  },
};

/** Which event a lineage chain is shown for: the most downstream kind present. */
const DOWNSTREAM = [
  'prediction',
  'model.loaded',
  'model.packaged',
  'model.trained',
  'dataset.protected',
  'dataset.created',
];

/** Last stage: sign a checkpoint, verify the whole log as a third party would, prove and trace an event. */
export const auditStage: DemoStage = {
  id: 'audit',
  title: 'Audit log: verification, proof and lineage',
  async run(ctx) {
    const log = ctx.state.audit;
    if (!log) throw new BulwarkError('ERR_INTERNAL', 'the audit stage needs the audit-open stage');
    const dir = auditDir(ctx.options.outDir);
    const publicKey = (await readFile(join(dir, 'log.key.pub'), 'utf8')).trim();
    let cp: Awaited<ReturnType<AuditLog['checkpoint']>>;
    let entries: AuditEntry[];
    let target: AuditEntry | undefined;
    let chain: LineageNode[] = [];
    let unresolved: { ref: string; usedBy: number }[] = [];
    let proofHashes = 0;
    let report: Awaited<ReturnType<AuditLog['verify']>>;
    try {
      cp = await log.checkpoint();
      ctx.progress(0.2);
      report = await log.verify({ publicKey });
      ctx.progress(0.5);
      entries = await log.tail(Math.max(1, cp.size));
      for (const type of DOWNSTREAM) {
        target = [...entries].reverse().find((e) => e.type === type);
        if (target) break;
      }
      if (target) {
        const lineage = await log.lineage(target.id);
        chain = lineage.nodes;
        unresolved = lineage.unresolved;
        const bundle = await log.prove(target.id, cp.size);
        // The auditor's check: the public key and the proof file only.
        verifyInclusionBundle(bundle, publicKey);
        proofHashes = bundle.proof.length;
        await writeFileAtomic(join(dir, 'proof.json'), `${JSON.stringify(bundle, null, 2)}\n`);
      }
      await writeFileAtomic(join(dir, 'checkpoint.txt'), cp.note);
    } finally {
      delete ctx.state.audit;
      await log.close();
    }
    ctx.progress(0.7);
    // Tamper with a copy and show the verifier catching it.
    const tampered = join(dir, 'tampered.db');
    await copyFile(join(dir, 'audit.db'), tampered);
    const db = new Database(tampered);
    db.prepare(
      `UPDATE entries SET body = replace(body, '"status":"ok"', '"status":"skipped"') WHERE idx = (SELECT max(idx) FROM entries WHERE body LIKE '%"status":"ok"%')`,
    ).run();
    db.close();
    let tamperCode = 'not detected';
    const copy = await AuditLog.open({ store: { kind: 'sqlite', path: tampered, create: false } });
    try {
      await copy.verify({ publicKey });
    } catch (e) {
      if (!isBulwarkError(e)) throw e;
      tamperCode = e.code;
    } finally {
      await copy.close();
    }
    if (tamperCode === 'not detected')
      throw new BulwarkError('ERR_INTERNAL', 'a tampered copy of the audit log verified');

    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          `The log holds ${cp.size} events. A checkpoint of the whole tree was signed, then the log was verified as an ` +
          'auditor would, with only the public key: every entry re-hashed, the tree rebuilt and compared with the ' +
          `signed root and every cached subtree (${report.seconds.toFixed(3)} s). A copy with one entry edited fails ` +
          `verification with ${tamperCode}.`,
      },
      {
        kind: 'table',
        caption: 'Signed checkpoint (audit/checkpoint.txt, C2SP tlog-checkpoint)',
        columns: ['line'],
        rows: cp.note
          .trimEnd()
          .split('\n')
          .map((l) => [l]),
      },
      {
        kind: 'facts',
        facts: [
          ['entries', cp.size],
          ['root (base64)', cp.root.toString('base64')],
          ['verified', report.checkpoints > 0 && report.size === cp.size],
          ['verify time (s)', Number(report.seconds.toFixed(3))],
          ['inclusion proof hashes', proofHashes],
          ['tampered copy', tamperCode],
        ],
      },
      {
        kind: 'table',
        caption: 'Events by type',
        columns: ['type', 'count'],
        rows: [...counts.entries()].map(([t, n]) => [t, n]),
      },
    ];
    if (target)
      blocks.push({
        kind: 'table',
        caption: `Lineage of event #${target.index} (${target.type}), proved in audit/proof.json`,
        columns: ['depth', 'entry', 'type', 'what', 'reached through'],
        rows: chain.map((n) => [
          n.depth,
          `#${n.entry.index}`,
          n.entry.type,
          describeEvent(n.entry),
          n.via ?? '',
        ]),
      });
    if (unresolved.length > 0)
      blocks.push({
        kind: 'text',
        text: `Not yet traceable: ${unresolved
          .map((u) => `#${u.usedBy} uses ${u.ref}`)
          .join('; ')}, which no earlier event records producing (the stage that made it did not log it).`,
      });
    return {
      summary: {
        entries: cp.size,
        root: cp.root.toString('base64'),
        verified: true,
        lineageLength: chain.length,
        lineageUnresolved: unresolved.length,
        tamperedCopy: tamperCode,
      },
      blocks,
    };
  },
};
