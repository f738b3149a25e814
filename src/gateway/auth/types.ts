import type { X509Certificate } from 'node:crypto';

/**
 * The authenticated caller, built once per request by {@link Authenticator.authenticate} and handed to
 * the policy stage. Never log it whole: `subject` and `spiffeId` identify people and workloads.
 */
export interface Principal {
  /** Stable identifier: the SPIFFE id when a client certificate was presented, else `${iss}|${sub}`. */
  readonly id: string;
  /** SPIFFE id from the (possibly forwarded) client certificate's single `spiffe://` URI SAN. */
  readonly spiffeId?: string;
  /** `sub` of the verified access token (RFC 9068 §2.2). */
  readonly subject?: string;
  /** `iss` of the verified access token. */
  readonly issuer?: string;
  /** `client_id` of the verified access token (RFC 9068 §2.2). */
  readonly clientId?: string;
  /** Tenant, from the configured token claim or the mTLS identity rule. */
  readonly tenant?: string;
  /** Roles, from the configured token claim and/or the mTLS identity rule (deduplicated, sorted). */
  readonly roles: readonly string[];
  /** OAuth scopes (`scope` claim split on spaces, RFC 8693 §4.2 / RFC 9068 §2.2.3). */
  readonly scopes: readonly string[];
  /** base64url SHA-256 of the client certificate's DER (RFC 8705 §3.1 `x5t#S256`). */
  readonly certThumbprint?: string;
  /** Epoch seconds after which this principal must be re-authenticated (token `exp`, cert `notAfter`). */
  readonly expiresAt?: number;
  /** Where the identity came from, for the audit record and policies (`dpop`: a DPoP-bound token whose proof verified). */
  readonly sources?: readonly ('mtls' | 'forwarded-cert' | 'token' | 'dpop')[];
}

/** What the transport knows about one request, as the gateway hands it to the authenticator. */
export interface AuthRequest {
  /** The TLS peer certificate, already verified by TLS against the client CA bundle. */
  readonly peerCertificate?: X509Certificate;
  /** `tlsSocket.authorized`: true only when the TLS layer verified `peerCertificate`. */
  readonly peerAuthorized: boolean;
  /**
   * Why TLS did not verify `peerCertificate` (`tlsSocket.authorizationError`, OpenSSL's verify code such
   * as `CERT_REVOKED` or `CRL_HAS_EXPIRED`); only read when `peerAuthorized` is false.
   */
  readonly peerAuthorizationError?: string;
  /** Address of the immediate TCP peer (for logs and policy context; never an identity). */
  readonly remoteAddress: string;
  /** Raw `Authorization` header value, e.g. `Bearer eyJ...` or `DPoP eyJ...` (RFC 9449 §7.1). */
  readonly authorization?: string;
  /** Raw `DPoP` header value (RFC 9449 §4.1): the proof of possession of the token's key. */
  readonly dpop?: string;
  /** The request's method and target (`req.url`), which a DPoP proof's `htm` and `htu` must name. */
  readonly method?: string;
  readonly url?: string;
  /**
   * Raw forwarded client-certificate header value (Envoy `x-forwarded-client-cert`, or a URL-encoded PEM
   * as nginx's `$ssl_client_escaped_cert`). Honoured ONLY when the immediate peer is a trusted proxy
   * authenticated over mTLS; otherwise its presence is refused.
   */
  readonly forwardedClientCert?: string;
}
