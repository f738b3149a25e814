/** Opening a ledger from a {@link LedgerSpec} or its text form, and the audit-log spend sink. */
import type { BudgetLedger, LedgerSpec, SpendRecord, SpendSink } from './ledger.js';
import { parseLedgerLocation } from './ledger.js';
import { PgLedger } from './postgres.js';
import { SqliteLedger } from './sqlite.js';

/**
 * Opens a budget ledger: SQLite (a file, the default) or PostgreSQL (several processes). A new SQLite
 * ledger is created only in a folder that exists (ERR_FILE_NOT_FOUND otherwise); `option` names where
 * the location came from (`--ledger`) in that error.
 *
 * @example
 * ```ts
 * const ledger = await openLedger('postgres://postgres@127.0.0.1:5432/test?schema=ledger');
 * await ledger.setBudget('adult', { epsilon: 3, delta: 1e-5 });
 * await ledger.spend({ dataset: 'adult', epsilon: 0.5, operation: 'query.count' }); // before releasing
 * ```
 */
export async function openLedger(
  spec: LedgerSpec | string,
  options: { onSpend?: SpendSink; option?: string | undefined } = {},
): Promise<BudgetLedger> {
  const s = typeof spec === 'string' ? parseLedgerLocation(spec) : spec;
  if (s.kind === 'sqlite') {
    return SqliteLedger.open({
      path: s.path,
      ...(options.option === undefined ? {} : { option: options.option }),
      ...(s.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: s.busyTimeoutMs }),
      ...(options.onSpend === undefined ? {} : { onSpend: options.onSpend }),
    });
  }
  return PgLedger.open({
    url: s.url,
    ...(s.schema === undefined ? {} : { schema: s.schema }),
    ...(s.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: s.connectTimeoutMs }),
    ...(s.poolSize === undefined ? {} : { poolSize: s.poolSize }),
    ...(options.onSpend === undefined ? {} : { onSpend: options.onSpend }),
  });
}

/** The part of the audit log a spend sink needs (src/audit's `AuditLog.append`). */
export interface AuditAppender {
  append(event: {
    type: 'privacy.spent';
    data: {
      spendId: string;
      dataset: string;
      analyst: string | null;
      epsilon: number;
      delta: number;
      operation: string;
      details: Record<string, string | number | boolean | null>;
    };
  }): Promise<unknown>;
}

/**
 * A spend sink that appends each committed spend to the audit log as a `privacy.spent` event. If the
 * append fails the spend stays committed (the budget is consumed: fail closed) and the error
 * propagates, so the caller does not release.
 */
export function auditSpendSink(log: AuditAppender): SpendSink {
  return async (r: SpendRecord) => {
    await log.append({
      type: 'privacy.spent',
      data: {
        spendId: r.id,
        dataset: r.dataset,
        analyst: r.analyst,
        epsilon: r.epsilon,
        delta: r.delta,
        operation: r.operation,
        details: { ...r.details },
      },
    });
  };
}
