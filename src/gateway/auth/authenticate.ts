import type { X509Certificate } from 'node:crypto';
import { BulwarkError, validateConfig } from '../../core/index.js';
import { type AuthConfig, type AuthConfigInput, authConfigSchema, type IdentityRule } from './config.js';
import { revocationError } from './crl.js';
import { DpopVerifier, MemoryReplayStore, type ReplayStore } from './dpop.js';
import { DpopNonces } from './dpop-nonce.js';
import { CaBundle, parsePemHeader, parseXfcc } from './forwarded.js';
import { JwtVerifier, tokenCallerId, type VerifiedToken } from './jwt.js';
import { certificateThumbprint, SvidCache } from './spiffe.js';
import type { AuthRequest, Principal } from './types.js';

export interface AuthenticatorOptions {
  /** fetch used for a remote JWKS (tests, proxies); defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Clock in epoch MILLISECONDS (tests); defaults to `Date.now`. */
  now?: () => number;
  /**
   * Where DPoP proof ids are remembered (`jwt.dpop`): the gateway passes a Redis store when replicas share
   * Redis; by default one in memory, bounded by `dpop.maxReplayEntries`.
   */
  dpopReplay?: ReplayStore;
  /**
   * Refuse to create when a remote JWKS does not answer (`serve --check`), instead of starting and
   * answering 503 until it does.
   */
  requireJwks?: boolean;
}

interface CertIdentity {
  readonly spiffeId: string;
  readonly thumbprint: string;
  readonly notAfter: number;
  readonly source: 'mtls' | 'forwarded-cert';
}

/**
 * The access token of an Authorization header and its scheme: `Bearer` (RFC 6750 §2.1) or `DPoP`
 * (RFC 9449 §7.1); schemes are case-insensitive (RFC 9110 §11.1).
 */
function accessToken(header: string): { scheme: 'bearer' | 'dpop'; token: string } {
  // Authorization is a singleton field (RFC 9110 §11.6.2) and a token68 holds no comma: repeated fields
  // arrive joined with ", ". Which of two credentials counts would otherwise depend on who reads them.
  if (header.includes(','))
    throw new BulwarkError('ERR_AUTH_TOKEN_MALFORMED', 'more than one Authorization header');
  const m = /^(bearer|dpop) +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header);
  if (m === null)
    throw new BulwarkError(
      'ERR_AUTH_TOKEN_MALFORMED',
      'Authorization header is not "Bearer <token>" or "DPoP <token>"',
    );
  return { scheme: m[1]!.toLowerCase() as 'bearer' | 'dpop', token: m[2]! };
}

function ruleMatches(rule: IdentityRule, id: string): boolean {
  if (rule.spiffeId.endsWith('/*')) return id.startsWith(rule.spiffeId.slice(0, -1));
  return rule.spiffeId === id;
}

/**
 * Zero-trust authentication of one request from its transport facts: the mTLS client certificate (or a
 * certificate forwarded by a trusted proxy that itself authenticated over mTLS) gives a SPIFFE workload
 * identity; a JWT access token gives subject, tenant, roles and scopes. Every failure throws a
 * `BulwarkError` with an `ERR_AUTH_*` code (the gateway maps them: `ERR_AUTH_JWKS_UNAVAILABLE` to 503,
 * the rest to 401).
 */
export class Authenticator {
  readonly #config: AuthConfig;
  readonly #options: AuthenticatorOptions;
  readonly #jwt: JwtVerifier | undefined;
  readonly #dpop: DpopVerifier | undefined;
  readonly #proxies: ReadonlyMap<string, 'xfcc' | 'pem'>;
  #ca: CaBundle | undefined;
  readonly #svids = new SvidCache();

  private constructor(
    config: AuthConfig,
    options: AuthenticatorOptions,
    jwt: JwtVerifier | undefined,
    ca: CaBundle | undefined,
    nonces: DpopNonces | null,
  ) {
    this.#config = config;
    this.#options = options;
    this.#jwt = jwt;
    this.#ca = ca;
    this.#proxies = new Map(config.trustedProxies.map((p) => [p.spiffeId, p.format]));
    const dpop = config.jwt?.dpop;
    this.#dpop =
      dpop === undefined
        ? undefined
        : new DpopVerifier(
            dpop,
            config.jwt!.clockSkewSeconds,
            options.dpopReplay ?? new MemoryReplayStore(dpop.maxReplayEntries, options.now),
            options.now,
            nonces,
          );
  }

  /**
   * Validates the `auth` section (errors name the key), loads the JWKS and the CA bundle. A remote JWKS
   * that is unreachable at start does not prevent starting: requests get `ERR_AUTH_JWKS_UNAVAILABLE`
   * (503) until the issuer answers, and verification recovers by itself.
   */
  static async create(config: AuthConfigInput, options: AuthenticatorOptions = {}): Promise<Authenticator> {
    const c = validateConfig(config, authConfigSchema, 'auth');
    let jwt: JwtVerifier | undefined;
    if (c.jwt !== undefined) {
      try {
        jwt = await JwtVerifier.create(c.jwt, options);
      } catch (e) {
        if (!(e instanceof BulwarkError && e.code === 'ERR_AUTH_JWKS_UNAVAILABLE') || options.requireJwks)
          throw e;
        jwt = await JwtVerifier.create(c.jwt, { ...options, deferInitialFetch: true });
      }
    }
    const ca = c.mtls?.caFile === undefined ? undefined : await CaBundle.load(c.mtls.caFile, c.mtls.crlFile);
    return new Authenticator(c, options, jwt, ca, await Authenticator.#nonces(c, options));
  }

  /** The DPoP nonces of `jwt.dpop.nonce` (secret read from its file), or null without them. */
  static async #nonces(c: AuthConfig, options: AuthenticatorOptions): Promise<DpopNonces | null> {
    const n = c.jwt?.dpop?.nonce;
    if (n === undefined) return null;
    return DpopNonces.fromFile(n.secretFile, n.lifetimeSeconds, c.jwt!.clockSkewSeconds, options.now);
  }

  /** The nonce for a `DPoP-Nonce` header (RFC 9449 §9), or undefined without `jwt.dpop.nonce`. */
  dpopNonce(): string | undefined {
    return this.#dpop?.nonce();
  }

  /** The parsed configuration (defaults filled in). */
  get config(): AuthConfig {
    return this.#config;
  }

  /** Verified tokens currently cached. */
  get cachedTokens(): number {
    return this.#jwt?.cacheSize ?? 0;
  }

  async authenticate(req: AuthRequest): Promise<Principal> {
    const nowMs = (this.#options.now ?? Date.now)();
    const cert = this.#certificateIdentity(req, nowMs);
    const header = req.authorization;
    let token: VerifiedToken | undefined;
    let dpopBound = false;
    if (header !== undefined && header !== '') {
      if (this.#jwt === undefined)
        throw new BulwarkError(
          'ERR_AUTH_TOKEN_MALFORMED',
          'bearer tokens are not accepted by this gateway (no jwt section)',
        );
      const { scheme, token: raw } = accessToken(header);
      if (scheme === 'dpop' && this.#dpop === undefined)
        throw new BulwarkError(
          'ERR_AUTH_TOKEN_MALFORMED',
          'DPoP tokens are not accepted by this gateway (no jwt.dpop section)',
        );
      token = await this.#jwt.verify(raw);
      dpopBound = await this.#checkDpop(req, scheme, raw, token);
    } else if (req.dpop !== undefined) {
      throw new BulwarkError('ERR_AUTH_DPOP_INVALID', 'a DPoP proof without an access token');
    }
    const req_ = this.#config.require;
    if ((req_ === 'certificate' || req_ === 'certificate-and-token') && cert === undefined)
      throw new BulwarkError('ERR_AUTH_MISSING', 'a client certificate (mTLS) is required');
    if ((req_ === 'token' || req_ === 'certificate-and-token') && token === undefined)
      throw new BulwarkError('ERR_AUTH_MISSING', 'a bearer access token is required');
    if (cert === undefined && token === undefined)
      throw new BulwarkError('ERR_AUTH_MISSING', 'no client certificate and no bearer token');

    // RFC 8705 §3: a certificate-bound token is only valid with the certificate it is bound to.
    const binding = this.#config.jwt?.certificateBinding ?? 'off';
    // Without an mtls section the certificate gives no identity but can still hold a binding; with one, a
    // trusted proxy's own certificate never stands in for the client's.
    const thumb =
      cert?.thumbprint ??
      (this.#config.mtls === undefined && req.peerAuthorized && req.peerCertificate
        ? certificateThumbprint(req.peerCertificate)
        : undefined);
    if (token !== undefined && binding !== 'off') {
      if (token.boundThumbprint === undefined) {
        if (binding === 'required')
          throw new BulwarkError(
            'ERR_AUTH_TOKEN_BINDING',
            'token is not certificate-bound (cnf x5t#S256 required)',
          );
      } else if (thumb === undefined) {
        throw new BulwarkError(
          'ERR_AUTH_TOKEN_BINDING',
          'token is certificate-bound but no client certificate was presented',
        );
      } else if (thumb !== token.boundThumbprint) {
        throw new BulwarkError('ERR_AUTH_TOKEN_BINDING', 'token is bound to another client certificate');
      }
    }
    return this.#principal(cert, token, dpopBound);
  }

  /**
   * RFC 9449 §7.1-7.2 for a verified token: a DPoP-bound token (`cnf.jkt`) only with the DPoP scheme and
   * a proof signed by that key; the DPoP scheme only with a DPoP-bound token (a bearer token sent as DPoP
   * is refused, not silently accepted); with `dpop.mode: required`, no bearer tokens. Without a `dpop`
   * section a DPoP-bound token is refused: its issuer meant it to be useless without the key. True when
   * the proof verified.
   */
  async #checkDpop(
    req: AuthRequest,
    scheme: 'bearer' | 'dpop',
    raw: string,
    token: VerifiedToken,
  ): Promise<boolean> {
    const dpop = this.#dpop;
    if (scheme === 'bearer') {
      if (token.boundJkt !== undefined)
        throw new BulwarkError(
          'ERR_AUTH_TOKEN_BINDING',
          dpop === undefined
            ? 'the token is DPoP-bound (cnf jkt) and this gateway does not accept DPoP (no jwt.dpop section)'
            : 'a DPoP-bound token must be sent with the DPoP scheme and a proof, not as a bearer token',
        );
      if (dpop?.mode === 'required')
        throw new BulwarkError(
          'ERR_AUTH_TOKEN_BINDING',
          'this gateway requires DPoP-bound tokens (jwt.dpop.mode)',
        );
      if (req.dpop !== undefined)
        throw new BulwarkError('ERR_AUTH_DPOP_INVALID', 'a DPoP proof with a bearer token');
      return false;
    }
    if (token.boundJkt === undefined)
      throw new BulwarkError(
        'ERR_AUTH_TOKEN_BINDING',
        'the DPoP scheme with a token that is not DPoP-bound (no cnf jkt)',
      );
    if (req.dpop === undefined || req.dpop === '')
      throw new BulwarkError('ERR_AUTH_DPOP_INVALID', 'the DPoP header is missing');
    if (req.method === undefined || req.url === undefined)
      throw new BulwarkError('ERR_AUTH_DPOP_INVALID', "the request's method and URL are unknown");
    await dpop!.verify(req.dpop, { method: req.method, url: req.url }, raw, token.boundJkt);
    return true;
  }

  /** The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3, RFC 9449 §7.1). */
  challenge(code: string): string {
    const dpop = this.#dpop;
    if (dpop === undefined) return 'Bearer';
    const algs = `algs="${dpop.algorithms.join(' ')}"`;
    const error =
      code === 'ERR_AUTH_DPOP_NONCE'
        ? 'error="use_dpop_nonce", '
        : code === 'ERR_AUTH_DPOP_INVALID' || code === 'ERR_AUTH_DPOP_REPLAY'
          ? 'error="invalid_dpop_proof", '
          : '';
    return dpop.mode === 'required' ? `DPoP ${error}${algs}` : `Bearer, DPoP ${error}${algs}`;
  }

  #principal(
    cert: CertIdentity | undefined,
    token: VerifiedToken | undefined,
    dpopBound: boolean,
  ): Principal {
    const rule =
      cert === undefined
        ? undefined
        : this.#config.mtls?.identities.find((r) => ruleMatches(r, cert.spiffeId));
    if (token?.tenant !== undefined && rule?.tenant !== undefined && token.tenant !== rule.tenant)
      throw new BulwarkError(
        'ERR_AUTH_IDENTITY_CONFLICT',
        'the token tenant differs from the certificate identity tenant',
      );
    const tenant = token?.tenant ?? rule?.tenant;
    const roles = [...new Set([...(rule?.roles ?? []), ...(token?.roles ?? [])])].sort();
    const expiries = [token?.exp, cert === undefined ? undefined : Math.floor(cert.notAfter / 1000)].filter(
      (x): x is number => x !== undefined,
    );
    const sources: ('mtls' | 'forwarded-cert' | 'token' | 'dpop')[] = [];
    if (cert !== undefined) sources.push(cert.source);
    if (token !== undefined) sources.push('token');
    if (dpopBound) sources.push('dpop');
    const id = cert?.spiffeId ?? tokenCallerId(token!);
    return {
      id,
      ...(cert === undefined ? {} : { spiffeId: cert.spiffeId, certThumbprint: cert.thumbprint }),
      ...(token === undefined
        ? {}
        : {
            issuer: token.issuer,
            ...(token.subject === undefined ? {} : { subject: token.subject }),
            ...(token.clientId === undefined ? {} : { clientId: token.clientId }),
          }),
      ...(tenant === undefined ? {} : { tenant }),
      roles,
      scopes: token?.scopes ?? [],
      ...(expiries.length === 0 ? {} : { expiresAt: Math.min(...expiries) }),
      sources,
    };
  }

  /**
   * The client's certificate identity. A forwarded certificate is honoured only when the immediate peer
   * presented a TLS-verified certificate whose SPIFFE id is a configured trusted proxy; a forwarded header
   * from anyone else is refused outright (not ignored), because its presence means a proxy is
   * misconfigured or someone is trying to impersonate a client.
   */
  #certificateIdentity(req: AuthRequest, nowMs: number): CertIdentity | undefined {
    const mtls = this.#config.mtls;
    // TLS's own reason when it has one: a revoked certificate, or a CRL out of date, gets the code the
    // forwarded-certificate path gives for the same case (ERR_AUTH_CERT_INVALID otherwise).
    if (req.peerCertificate !== undefined && !req.peerAuthorized)
      throw revocationError(req.peerAuthorizationError ?? '');
    const peer = req.peerAuthorized ? req.peerCertificate : undefined;
    const forwarded = req.forwardedClientCert;
    let peerId: string | undefined;
    if (peer !== undefined && mtls !== undefined) peerId = this.#svids.facts(peer).spiffeId;
    const proxyFormat = peerId === undefined ? undefined : this.#proxies.get(peerId);

    if (forwarded !== undefined && forwarded !== '') {
      if (proxyFormat === undefined || mtls === undefined || this.#ca === undefined)
        throw new BulwarkError(
          'ERR_AUTH_FORWARDED_UNTRUSTED',
          'a forwarded client certificate is accepted only from a trusted proxy authenticated over mTLS',
        );
      const leaf = proxyFormat === 'xfcc' ? parseXfcc(forwarded) : parsePemHeader(forwarded);
      this.#ca.verifyLeaf(leaf, nowMs);
      return this.#identityOf(leaf, 'forwarded-cert', mtls.trustDomains, nowMs);
    }
    // A trusted proxy without a forwarded certificate speaks for unknown clients: it is not itself the caller.
    if (peer === undefined || mtls === undefined || proxyFormat !== undefined) return undefined;
    return this.#identityOf(peer, 'mtls', mtls.trustDomains, nowMs);
  }

  #identityOf(
    cert: X509Certificate,
    source: 'mtls' | 'forwarded-cert',
    trustDomains: readonly string[],
    nowMs: number,
  ): CertIdentity {
    const facts = this.#svids.facts(cert);
    // TLS checked validity at the handshake; a kept-alive connection can outlive the certificate.
    if (nowMs > facts.notAfter)
      throw new BulwarkError('ERR_AUTH_CERT_INVALID', 'the client certificate has expired');
    if (!trustDomains.includes(facts.trustDomain))
      throw new BulwarkError(
        'ERR_AUTH_TRUST_DOMAIN',
        `SPIFFE trust domain ${facts.trustDomain} is not allowed`,
      );
    return { spiffeId: facts.spiffeId, thumbprint: facts.thumbprint, notAfter: facts.notAfter, source };
  }

  /**
   * Reloads the CA bundle with its CRLs, the JWKS (file re-read or remote refetch) and the DPoP nonce
   * secret, and empties the token cache.
   * Each part is attempted whatever happens to the other, CA bundle first: an operator reloads to
   * withdraw a CA or a key, and an issuer that is down at that moment must not keep a withdrawn CA
   * trusted. The first failure is thrown once both have been tried; a part that failed keeps its
   * previous state (the token cache is emptied in any case).
   */
  async reload(): Promise<void> {
    this.#svids.clear();
    const errors: unknown[] = [];
    if (this.#config.mtls?.caFile !== undefined) {
      try {
        this.#ca = await CaBundle.load(this.#config.mtls.caFile, this.#config.mtls.crlFile);
      } catch (e) {
        errors.push(e);
      }
    }
    if (this.#jwt !== undefined) {
      try {
        await this.#jwt.reload();
      } catch (e) {
        errors.push(e);
      }
    }
    // A new nonce secret: nonces of the old one are refused from now on, and clients retry once with
    // the DPoP-Nonce of that refusal.
    if (this.#dpop !== undefined && this.#config.jwt?.dpop?.nonce !== undefined) {
      try {
        this.#dpop.setNonces(await Authenticator.#nonces(this.#config, this.#options));
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Releases nothing long-lived today (jose's remote set holds no sockets); kept for the server's shutdown. */
  async close(): Promise<void> {
    this.#jwt?.clear();
    await this.#dpop?.store.close?.();
  }
}
