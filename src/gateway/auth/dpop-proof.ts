import { randomUUID } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { accessTokenHash } from './dpop-hash.js';

/**
 * The client side of RFC 9449: a key pair the client keeps, and a fresh proof per request (§4.2). The
 * authorisation server binds the access token to the key's thumbprint (`cnf.jkt`) when the token request
 * carries a proof; every request to the gateway then carries another, for its method and URL.
 */

/** Algorithms a DPoP key may use here (asymmetric; the gateway's default `dpop.algorithms` accepts both). */
export type DpopAlgorithm = 'ES256' | 'EdDSA';

/** A DPoP key pair. Keep `privateKey` in memory only; never log it. */
export interface DpopKey {
  readonly alg: DpopAlgorithm;
  readonly privateKey: CryptoKey;
  /** The public key as a JWK (the proof's `jwk` header). */
  readonly publicJwk: JWK;
  /** Its RFC 7638 SHA-256 thumbprint: the `cnf.jkt` the token must carry. */
  readonly jkt: string;
}

/** A new non-extractable DPoP key pair (the CSPRNG, through WebCrypto). */
export async function createDpopKey(alg: DpopAlgorithm = 'ES256'): Promise<DpopKey> {
  if (alg !== 'ES256' && alg !== 'EdDSA')
    throw new TypeError(`alg: expected ES256 or EdDSA, got ${String(alg)}`);
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  const publicJwk = await exportJWK(publicKey);
  return { alg, privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

/**
 * One DPoP proof (RFC 9449 §4.2) for `method` and `url` (its query and fragment are left out, as §4.3
 * compares without them); with `accessToken`, its hash `ath` (§4.2, required at resource servers); with
 * `nonce`, the server's latest `DPoP-Nonce` (§9).
 */
export async function dpopProof(
  key: DpopKey,
  method: string,
  url: string | URL,
  accessToken?: string,
  nonce?: string,
): Promise<string> {
  const u = new URL(url);
  const htu = `${u.origin}${u.pathname}`;
  return new SignJWT({
    htm: method,
    htu,
    ...(accessToken === undefined ? {} : { ath: accessTokenHash(accessToken) }),
    ...(nonce === undefined ? {} : { nonce }),
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .setJti(randomUUID())
    .setIssuedAt()
    .sign(key.privateKey);
}
