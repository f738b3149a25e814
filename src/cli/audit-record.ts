/**
 * Recording lifecycle operations in the audit log from the CLI: `--audit <store>` (or
 * `BULWARK_AUDIT_STORE`) on the commands that create keys, protect data, train models and spend
 * privacy budget. The log is opened BEFORE the operation, so an unreachable or missing log refuses the
 * operation instead of letting it happen unrecorded (fail closed), and the event is appended after the
 * operation's output is durable. Without either setting nothing is recorded.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { AuditEventInput, AuditLog, AuditStoreSpec } from '../audit/index.js';
import { BulwarkError } from '../core/index.js';
import { locationOrigin } from './options.js';

/** The audit library, loaded on first use so other commands do not pay for pg and better-sqlite3. */
const lib = () => import('../audit/index.js');

/** Where the audit commands look by default. */
export const DEFAULT_AUDIT_STORE = 'bulwark-audit.db';

/**
 * A store location: a SQLite file, or a `postgres://` URL with the schema holding the log.
 * `create` is for commands that may start a new log (checkpoint with a signing key); a new SQLite log
 * is created only in a folder that exists. `option` names where the location came from (`--store`,
 * `$BULWARK_AUDIT_STORE`) in the errors about a missing file or folder.
 */
export function auditStoreSpec(
  location: string,
  create: boolean,
  pgSchema?: string,
  option?: string,
): AuditStoreSpec {
  if (/^postgres(ql)?:\/\//.test(location)) {
    if (!URL.canParse(location))
      // The URL itself is never quoted: it may hold a password.
      throw new BulwarkError('ERR_USAGE', 'the audit store is a postgres:// URL that does not parse', {
        details: { option: '--store' },
      });
    return {
      kind: 'postgres',
      url: location,
      schema: pgSchema ?? process.env['BULWARK_AUDIT_PG_SCHEMA'] ?? 'bulwark_audit',
      create,
    };
  }
  return { kind: 'sqlite', path: resolve(location), create, ...(option === undefined ? {} : { option }) };
}

export const AUDIT_OPTION_FLAGS = '--audit <store>';
export const AUDIT_OPTION_HELP =
  'record this operation in an existing audit log: SQLite file or postgres:// URL (default $BULWARK_AUDIT_STORE; none: not recorded)';

/** Adds `--audit <store>` to a lifecycle command. */
export function addAuditOption(cmd: Command): Command {
  return cmd.option(AUDIT_OPTION_FLAGS, AUDIT_OPTION_HELP);
}

/** Where to record, from `--audit` or the environment; undefined when recording is off. */
export function auditLocation(option: string | undefined): string | undefined {
  const v = option ?? process.env['BULWARK_AUDIT_STORE'];
  return v === undefined || v === '' ? undefined : v;
}

/**
 * Opens the operation's audit log (it must exist: `bulwark audit checkpoint --signing-key` creates
 * one), runs `fn` with it, and closes it. `fn` gets undefined when recording is off.
 */
export async function withOperationLog<T>(
  option: string | undefined,
  fn: (log: AuditLog | undefined) => Promise<T>,
): Promise<T> {
  const location = auditLocation(option);
  if (location === undefined) return fn(undefined);
  const store = auditStoreSpec(
    location,
    false,
    undefined,
    locationOrigin('--audit', option !== undefined, 'BULWARK_AUDIT_STORE'),
  );
  let log: AuditLog;
  try {
    log = await (await lib()).AuditLog.open({ store });
  } catch (e) {
    // The log is never created here (a mistyped path would start an empty one): say how it is made.
    if (e instanceof BulwarkError && e.code === 'ERR_FILE_NOT_FOUND')
      throw new BulwarkError(
        'ERR_FILE_NOT_FOUND',
        `${e.message}; create the log first: bulwark audit keygen --name ORIGIN --out log.key, then bulwark audit checkpoint --store ${location} --signing-key log.key`,
        { details: e.details, cause: e },
      );
    throw e;
  }
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

/** Appends the events when a log is open; returns the entries' ids (for the command's output). */
export async function record(
  log: AuditLog | undefined,
  events: readonly AuditEventInput[],
): Promise<string[]> {
  if (log === undefined) return [];
  const ids: string[] = [];
  for (const e of events) ids.push((await log.append(e)).id);
  return ids;
}
