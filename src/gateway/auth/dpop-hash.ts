import { createHash } from 'node:crypto';
import type { JWK } from 'jose';

/** base64url SHA-256 of the access token's ASCII bytes: a DPoP proof's `ath` (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/** RFC 7638 §3.2: the members of each key type that a thumbprint covers, in lexicographic order. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
};

/**
 * The RFC 7638 SHA-256 thumbprint of a public JWK, base64url: the `cnf.jkt` of RFC 9449 §6.1. The same
 * value as jose's `calculateJwkThumbprint`, computed with node:crypto's synchronous hash: jose goes through
 * WebCrypto's asynchronous digest, a thread-pool round trip per request on the gateway's hot path. Null
 * for a key type or member that is not there (the caller refuses the proof).
 */
export function jwkThumbprint(jwk: JWK): string | null {
  const members = typeof jwk.kty === 'string' ? THUMBPRINT_MEMBERS[jwk.kty] : undefined;
  if (members === undefined) return null;
  const canonical: Record<string, string> = {};
  for (const m of members) {
    const v = (jwk as Record<string, unknown>)[m];
    if (typeof v !== 'string') return null;
    canonical[m] = v;
  }
  // No whitespace, members in the order above (RFC 7638 §3.3): JSON.stringify keeps insertion order.
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}
