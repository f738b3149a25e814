import { type Command, InvalidArgumentError } from 'commander';
import { z } from 'zod';
import type { AttestationClaims, AttestationPolicy } from '../../attest/index.js';
import { BulwarkError, parseConfig, readInputFile } from '../../core/index.js';
import { ioOf } from '../output.js';

interface VerifyOpts {
  format: string;
  root?: string[];
  chain?: string[];
  crl?: string[];
  at?: string;
  /** A policy file; false with --no-policy; undefined: the production defaults. */
  policy?: string | false;
  nonce?: string;
  userData?: string;
  publicKey?: string;
  measurement?: string[];
}

function hexOption(what: string): (v: string) => string {
  return (v) => {
    if (!/^([0-9a-fA-F]{2})+$/.test(v)) throw new InvalidArgumentError(`expected ${what} as hex, got "${v}"`);
    return v.toLowerCase();
  };
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** `--measurement NAME=HEX`, checked as it is parsed. */
function measurementOption(v: string, prev: string[] | undefined): string[] {
  if (!/^[A-Za-z][A-Za-z0-9_-]*=([0-9a-fA-F]{2})+$/.test(v))
    throw new InvalidArgumentError(`expected NAME=HEX (e.g. PCR0=0a1b...), got "${v}"`);
  return collect(v, prev);
}

/**
 * The policy with `--measurement` pins added (each name allows the values given for it, together with
 * those of the policy file) and, with `--at document`, freshness left out: a document checked at its own
 * time is an archival check, and an age of zero would prove nothing.
 */
function effectivePolicy(
  policy: AttestationPolicy,
  pins: readonly string[],
  archival: boolean,
): AttestationPolicy {
  const measurements: Record<string, string[]> = Object.fromEntries(
    Object.entries(policy.measurements).map(([k, v]) => [k, [...v]]),
  );
  for (const pin of pins) {
    const [name, value] = pin.split('=') as [string, string];
    measurements[name] = [...(measurements[name] ?? []), value.toLowerCase()];
  }
  return { ...policy, measurements, ...(archival ? { maxAgeSeconds: null } : {}) };
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  return new Uint8Array(await readInputFile(path, what));
}

/** A document file is raw bytes, or base64 text (how Nitro documents are often stored and sent). */
function documentBytes(raw: Uint8Array): Uint8Array {
  const text = Buffer.from(raw).toString('latin1').trim();
  if (text.length >= 16 && /^[A-Za-z0-9+/=\s_-]+$/.test(text))
    return new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'base64'));
  return raw;
}

/** A certificate/key file: PEM text is passed as text, anything else as DER bytes. */
async function readPemOrDer(path: string, what: string): Promise<string | Uint8Array> {
  const b = await readBytes(path, what);
  const t = Buffer.from(b).toString('latin1');
  return t.includes('-----BEGIN ') ? t : b;
}

function parseAt(v: string): Date | 'document' {
  if (v === 'document') return 'document';
  const d = /^\d+$/.test(v) ? new Date(Number(v)) : new Date(v);
  if (Number.isNaN(d.getTime())) {
    throw new BulwarkError(
      'ERR_USAGE',
      `--at: expected an ISO-8601 time, milliseconds since the epoch, or "document", got "${v}"`,
    );
  }
  return d;
}

async function loadPolicy(path: string): Promise<AttestationPolicy> {
  const text = await readInputFile(path, 'policy file', 'utf8');
  const { parsePolicy } = await loadAttest();
  return parsePolicy(parseConfig(text, z.unknown(), path));
}

/**
 * The verifiers, loaded by the attest commands when they run: at start-up every other command (and
 * --help) would pay for their dependencies (COSE, CBOR, X.509, HPKE) on each start.
 */
const loadAttest = () => import('../../attest/index.js');

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : null);

function claimsJson(c: AttestationClaims): Record<string, unknown> {
  return {
    format: c.format,
    hardware: c.hardware,
    debug: c.debug,
    time: c.time?.toISOString() ?? null,
    trustAnchor: c.trustAnchor,
    measurements: c.measurements,
    nonce: hex(c.nonce),
    nonceVerified: c.nonceVerified,
    publicKey: hex(c.publicKey),
    userData: hex(c.userData),
    ...(c.tcb ? { tcb: c.tcb } : {}),
    details: c.details,
  };
}

/**
 * What the output says of freshness. A document that passed a policy with an age limit was either
 * young enough (it carries a time) or bound the nonce sent (checkPolicy refuses anything else).
 */
function freshnessOf(
  policy: AttestationPolicy | undefined,
  archival: boolean,
  claims: AttestationClaims,
): string {
  if (policy === undefined) return 'not evaluated (--no-policy)';
  if (archival) return "not evaluated (--at document: an archival check at the document's own time)";
  if (policy.maxAgeSeconds === null)
    return 'not evaluated (the policy allows archived evidence: maxAgeSeconds null)';
  return claims.time ? `checked: at most ${policy.maxAgeSeconds} s old` : 'checked: the nonce sent is bound';
}

/** How the policy applied is named in the output. */
function policyName(policy: string | false | undefined): string {
  if (policy === false) return 'none (--no-policy: signature, chain and bindings only)';
  return policy ?? 'the production defaults (hardware, no debug, at most 300 s old, --measurement pins)';
}

function human(
  c: AttestationClaims,
  policy: string | false | undefined,
  at: Date,
  freshness: string,
): string {
  const short = (h: string | null) =>
    h === null ? 'none' : h.length > 64 ? `${h.slice(0, 64)}… (${h.length / 2} bytes)` : h;
  const lines = [
    `verified: ${c.format} attestation (${c.hardware ? 'hardware root of trust' : 'SOFTWARE: no hardware guarantee'})`,
    `  trust anchor  ${c.trustAnchor}`,
    `  checked at    ${at.toISOString()}`,
    `  time          ${c.time?.toISOString() ?? 'none in the document'}`,
    `  debug         ${c.debug ? 'YES (the host can read enclave memory)' : 'no'}`,
    ...Object.entries(c.details).map(([k, v]) => `  ${k.padEnd(13)} ${String(v)}`),
    ...(c.tcb
      ? [
          `  tcb           ${Object.entries(c.tcb)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        ]
      : []),
    '  measurements',
    ...Object.entries(c.measurements).map(([k, v]) => `    ${k.padEnd(11)} ${v}`),
    `  nonce         ${c.nonce ? `${short(hex(c.nonce))}${c.nonceVerified ? ' (matches --nonce)' : ''}` : 'none'}`,
    `  public key    ${short(hex(c.publicKey))}`,
    `  user data     ${short(hex(c.userData))}`,
    `  policy        ${policy === false ? policyName(policy) : `${policyName(policy)}: passed`}`,
    `  freshness     ${freshness}`,
  ];
  if (!c.hardware)
    lines.push(
      'WARNING: a software attestation is signed by an ordinary process key; it proves nothing about the machine.',
    );
  return lines.join('\n');
}

export function registerAttestCommands(program: Command): void {
  const attest = program
    .command('attest')
    .description('verify enclave attestation documents (AWS Nitro, AMD SEV-SNP, Bulwark software mode)');

  attest
    .command('verify')
    .description(
      'Verify an attestation document: signature, certificate chain to the pinned root, bindings, policy',
    )
    .argument('<doc>', 'the attestation document (raw bytes or base64)')
    .requiredOption('--format <format>', `document format: ${['nitro', 'sev-snp', 'software'].join(' | ')}`)
    .option(
      '--root <pem>',
      'trust this root certificate (or, for software, signer public key) instead of the pinned one; repeatable',
      collect,
    )
    .option(
      '--chain <file>',
      'certificates that do not travel in the document (SEV-SNP: ASK/ARK PEM and VCEK DER); repeatable',
      collect,
    )
    .option(
      '--crl <file>',
      "certificate revocation list of a CA of the chain (PEM or DER; AMD KDS's crl for SEV-SNP); repeatable. A listed certificate is refused, so is a CRL not current at the verification time; without --crl revocation is not checked",
      collect,
    )
    .option(
      '--at <time>',
      'verification time: ISO-8601, ms since the epoch, or "document" (its own timestamp)',
    )
    .option(
      '--policy <file>',
      'YAML/JSON attestation policy (requireHardware, allowDebug, measurements, maxAgeSeconds, minTcb); default: the production defaults (hardware required, no debug, at most 300 s old)',
    )
    .option('--no-policy', 'apply no policy: check the signature, the chain and the bindings only')
    .option(
      '--nonce <hex>',
      'the nonce the document must carry (SEV-SNP: the first bytes of REPORT_DATA); only a nonce makes a document without a time fresh',
      hexOption('a nonce'),
    )
    .option(
      '--user-data <hex>',
      'the user data (SEV-SNP REPORT_DATA) the document must bind',
      hexOption('user data'),
    )
    .option('--public-key <file>', 'a file holding the exact public key bytes the document must bind')
    .option(
      '--measurement <name=hex>',
      'an approved measurement value (e.g. PCR0=...), added to the policy; repeatable. A policy must pin at least one (or say allowAnyMeasurement: true)',
      measurementOption,
    )
    .addHelpText(
      'after',
      `
Exit codes: 0 verified · 2 unknown format or bad option · 3 malformed document or missing file ·
4 policy file invalid · 5 refused (signature, chain, root, expiry, revoked, nonce, binding, debug, measurement,
TCB, hardware required, stale). Examples:
  bulwark attest verify doc.bin --format nitro --measurement PCR0=<hex> --at document
  bulwark attest verify report.bin --format sev-snp --chain ask_ark_milan.pem --chain vcek.der --policy prod.yaml`,
    )
    .action(async (doc: string, o: VerifyOpts, cmd: Command) => {
      const io = ioOf(cmd);
      const { attestationVerifier, peekCoseTimestamp, verifyAttestation } = await loadAttest();
      attestationVerifier(o.format); // unknown format: fail before reading anything
      const bytes = documentBytes(await readBytes(doc, 'attestation document'));
      const roots = o.root ? await Promise.all(o.root.map((r) => readPemOrDer(r, 'root'))) : undefined;
      const chain = o.chain
        ? await Promise.all(o.chain.map((c) => readPemOrDer(c, 'chain file')))
        : undefined;
      const crls = o.crl ? await Promise.all(o.crl.map((c) => readPemOrDer(c, 'CRL file'))) : undefined;
      // Without --policy the production defaults apply (fail closed: a debug or software enclave, or a
      // stale document, is refused); only --no-policy checks the signature, chain and bindings alone.
      if (o.policy === false && o.measurement !== undefined)
        throw new BulwarkError(
          'ERR_USAGE',
          '--measurement adds to a policy; it cannot be used with --no-policy',
        );
      const parsedAt = o.at === undefined ? new Date() : parseAt(o.at);
      const archival = parsedAt === 'document';
      const base =
        o.policy === false
          ? undefined
          : o.policy !== undefined
            ? await loadPolicy(o.policy)
            : (await loadAttest()).parsePolicy({});
      const policy = base && effectivePolicy(base, o.measurement ?? [], archival);
      let at = parsedAt;
      if (at === 'document') {
        const t = peekCoseTimestamp(bytes);
        // A Nitro document does carry one: not finding it means the file is not such a document (a
        // CSV given by mistake read "a nitro document carries no timestamp", which is false).
        if (!t)
          throw new BulwarkError(
            'ERR_USAGE',
            o.format === 'sev-snp'
              ? '--at document: a sev-snp report carries no timestamp; give a time'
              : `--at document: no timestamp found in ${doc} (not a ${o.format} document, or one without a timestamp); give a time`,
            { details: { option: '--at' } },
          );
        at = t;
      }
      const claims = await verifyAttestation(o.format, bytes, {
        at,
        ...(roots ? { roots } : {}),
        ...(chain ? { chain } : {}),
        ...(crls ? { crls } : {}),
        ...(policy ? { policy } : {}),
        ...(o.nonce ? { nonce: new Uint8Array(Buffer.from(o.nonce, 'hex')) } : {}),
        ...(o.userData ? { userData: new Uint8Array(Buffer.from(o.userData, 'hex')) } : {}),
        ...(o.publicKey ? { publicKey: await readBytes(o.publicKey, 'public key file') } : {}),
      });
      const atDate = at;
      const freshness = freshnessOf(policy, archival, claims);
      io.result(
        {
          verified: true,
          checkedAt: atDate.toISOString(),
          policy: policyName(o.policy),
          freshness,
          claims: claimsJson(claims),
        },
        () => human(claims, o.policy, atDate, freshness),
      );
    });

  attest
    .command('formats')
    .description('List the attestation formats Bulwark verifies, and the reserved ones')
    .action(async (_o: unknown, cmd: Command) => {
      const io = ioOf(cmd);
      const { attestationFormats, attestationVerifier, RESERVED_ATTESTATION_FORMATS } = await loadAttest();
      const formats = attestationFormats().map((f) => {
        const v = attestationVerifier(f);
        return { format: f, hardware: v.hardware, description: v.description };
      });
      const reserved = Object.entries(RESERVED_ATTESTATION_FORMATS).map(([format, description]) => ({
        format,
        description,
      }));
      io.result({ formats, reserved }, () =>
        [
          ...formats.map((f) => `${f.format.padEnd(11)} ${f.description}`),
          ...reserved.map((r) => `${r.format.padEnd(11)} ${r.description}`),
        ].join('\n'),
      );
    });
}
