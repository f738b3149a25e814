/**
 * Which URL query parameters carry a credential. One rule for `deploy k8s` (a bulwark.yaml URL must not
 * carry one into the ConfigMap) and `deploy check` (BW-SECRET-ENV-LITERAL on a container's env): the two
 * used to keep lists of their own that disagreed (one matched `sslpassword` but not `pwd`, the other the
 * reverse), so the same URL passed one command and failed the other.
 *
 * The parameter's name, lower-cased with separators dropped (`api-key`, `api_key`, `apiKey` are one),
 * is a credential when it ends in a secret noun (`password`, `sslpassword`, `passwd`, `pwd`, `secret`,
 * `client_secret`, `token`, `access_token`, `apikey`, `signature`: pg and ioredis read `?password=` and
 * `?sslpassword=`, OAuth `?access_token=`, S3 pre-signed URLs `X-Amz-Signature`) or is one of the short
 * names services use for one (`pass`, `key` as in Google's `?key=`, `sig` as in Azure SAS tokens, `auth`).
 * The last word decides, not a substring: `tokenUrl`, `passthrough`, `sslkey` (a path) and `keepalive`
 * are settings.
 */
const SECRET_ENDINGS = ['password', 'passwd', 'pwd', 'secret', 'token', 'apikey', 'signature'] as const;
const SECRET_NAMES = new Set(['pass', 'key', 'sig', 'auth']);

/** Whether a URL query parameter of this name carries a credential (see the module comment). */
export function isCredentialParam(name: string): boolean {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  return SECRET_NAMES.has(n) || SECRET_ENDINGS.some((e) => n.endsWith(e));
}

/**
 * The credential a URL-shaped string carries, if any: `userinfo` for a password in its user info
 * (`postgres://app:pw@db/app`), else the name of the first credential parameter of its query. For
 * strings that may not parse as a URL (an env value): only `scheme://…` strings count, and the query is
 * read with the same splitting a URL parser uses.
 */
export function urlCredential(value: string): string | undefined {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#\s]*)([^?#\s]*)(\?[^#\s]*)?/.exec(value);
  if (!m) return undefined;
  if (/^[^@]*:[^@]+@/.test(m[1] ?? '')) return 'userinfo';
  for (const pair of (m[3] ?? '').slice(1).split('&')) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) continue; // no name or an empty value
    const name = safeDecode(pair.slice(0, eq));
    if (isCredentialParam(name)) return name;
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}
