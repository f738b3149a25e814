/**
 * What the PostgreSQL-backed stores (the audit log, the privacy-budget ledger) share about failures and
 * connection strings. Both fail closed: a connection-level failure makes them refuse, never allow.
 */

/** errno codes of a connection that cannot be made or was lost. */
export const CONNECTION_ERRNO: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);

/** Connection-level failures: the database is unreachable, shutting down, or refuses us. */
export function isConnectionFailure(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_ERRNO.has(code)) return true;
    // SQLSTATE classes 08 (connection), 28 (authorization), 3D (no such database), 53 (resources),
    // 57P0x (shutdown, cannot connect now).
    if (/^(08|28|3D|53)/.test(code) || /^57P0[1-4]$/.test(code)) return true;
  }
  // node-postgres raises these without a code (its own Error objects), so only their text tells them
  // apart; a message that matches nothing here is not a connection failure (the caller reports it as is).
  const msg = e instanceof Error ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
    msg,
  );
}

/** A connection string without its password, for messages (secrets never reach logs or errors). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    // libpq also takes the password as a query parameter (and the client key's passphrase).
    for (const k of [...u.searchParams.keys()]) if (/pass/i.test(k)) u.searchParams.set(k, 'redacted');
    return u.toString();
  } catch {
    return 'postgres (unparseable URL)';
  }
}
