/**
 * The writer thread of {@link ThreadedAuditLog} (src/audit/threaded.ts): opens the log, appends the
 * events the main thread posts (group commit in {@link AuditLog}) and posts each batch's receipts back
 * once it is durable.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BulwarkError } from '../core/index.js';
import { AuditLog } from './log.js';
import { parseSignerKey } from './note.js';
import type { FromWriter, ToWriter, WireError, WriterInit } from './threaded.js';
import type { AppendReceipt } from './writer.js';

const port = parentPort;
if (port === null) throw new Error('threaded-worker.ts runs as a worker thread only');
const init = workerData as WriterInit;

function wire(e: unknown): WireError {
  if (e instanceof BulwarkError) return { code: e.code, message: e.message, details: { ...e.details } };
  return {
    code: 'ERR_AUDIT_UNAVAILABLE',
    message: `the audit log cannot be written (${e instanceof Error ? e.message : String(e)})`,
  };
}

let log: AuditLog;
try {
  log = await AuditLog.open({
    store: init.store,
    ...(init.signerKey !== undefined ? { signer: parseSignerKey(init.signerKey) } : {}),
    ...(init.origin !== undefined ? { origin: init.origin } : {}),
    ...(init.maxBatch !== undefined ? { maxBatch: init.maxBatch } : {}),
  });
} catch (e) {
  port.postMessage({ k: 'fatal', error: wire(e) } satisfies FromWriter);
  process.exit(1);
}

// Receipts of the batches committed in one turn travel back in one message.
let done: ({ s: number; ok: AppendReceipt } | { s: number; err: WireError })[] = [];
let scheduled = false;
function answer(r: (typeof done)[number]): void {
  done.push(r);
  if (scheduled) return;
  scheduled = true;
  setImmediate(drain);
}
function drain(): void {
  scheduled = false;
  if (done.length === 0) return;
  const r = done;
  done = [];
  port?.postMessage({ k: 'appended', r } satisfies FromWriter);
}

async function call({ op, arg }: Extract<ToWriter, { k: 'call' }>): Promise<unknown> {
  switch (op) {
    case 'flush':
      return log.flush();
    case 'checkpoint':
      return log.checkpoint();
    case 'checkpoints':
      return log.checkpoints();
    case 'publicKey':
      return log.publicKey();
    case 'useSigner':
      return log.useSigner(arg ?? '');
    case 'close':
      return log.close();
  }
}

port.on('message', (m: ToWriter) => {
  if (m.k === 'append') {
    for (const { s, e } of m.events)
      log.append(e).then(
        (ok) => answer({ s, ok }),
        (err: unknown) => answer({ s, err: wire(err) }),
      );
  } else {
    // Receipts already known go first: a flush resolves after the appends it covers.
    call(m).then(
      (ok) => {
        drain();
        port?.postMessage({ k: 'result', s: m.s, ok } satisfies FromWriter);
      },
      (err: unknown) => {
        drain();
        port?.postMessage({ k: 'result', s: m.s, err: wire(err) } satisfies FromWriter);
      },
    );
  }
});
port.postMessage({ k: 'ready', origin: log.origin } satisfies FromWriter);
