import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AuditEntry, AuditLog, generateSignerKey, verifyInclusionBundle } from '../../audit/index.js';
import { SeededRng, sha256Digest } from '../../core/index.js';
import type { GatewayClient } from '../../gateway/client.js';
import type { Block } from '../../report/index.js';
import type { DemoStage } from '../stage.js';

const ISSUER = 'https://login.bulwark.demo';
const AUDIENCE = 'https://gateway.bulwark.demo';
const MODEL = 'fraud';
/** The baseline's package name (stages/package.ts writes it when there is no DP model). */
const BASELINE_NAME = 'fraud-baseline';

// The demo's Cedar policies: tenants predict on their own tenant's models (examples/gateway/ has more).
const POLICIES = `@id("tenant-own-models")
permit (principal, action == Bulwark::Action::"predict", resource)
when { principal has tenant && resource has tenant && principal.tenant == resource.tenant &&
       principal.scopes.contains("predict") };
@id("monitoring-reads-metrics")
permit (principal, action == Bulwark::Action::"read-metrics", resource) when { principal.roles.contains("monitoring") };
`;

async function tlsFiles(dir: string): Promise<{ caPem: string }> {
  // Loaded when the stage runs, as the gateway below: see gatewayStage.run.
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const sig = { name: 'ECDSA', hash: 'SHA-256' } as const;
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: 'CN=Bulwark demo CA',
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: sig,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject: 'CN=localhost',
    issuer: ca.subject,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: sig,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1']),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  await writeFile(join(dir, 'server.pem'), leaf.toString('pem'));
  await writeFile(
    join(dir, 'server.key'),
    `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`,
    { mode: 0o600 },
  );
  const caPem = ca.toString('pem');
  await writeFile(join(dir, 'ca.pem'), caPem);
  return { caPem };
}

/**
 * Stage: the case-study package (the DP model; the baseline's only when it is absent) served by
 * `bulwark serve`'s gateway over TLS 1.3, with JWT access
 * tokens from a local issuer, Cedar policies, a rate limit and query budget, schema validation, the
 * three detectors, output hardening and an audit log. Legitimate traffic is answered; each attack is
 * refused at its stage with its code; one prediction is proved to be in the signed audit log.
 */
export const gatewayStage: DemoStage = {
  id: 'gateway',
  title: 'Zero-trust inference gateway: legitimate traffic and attacks',
  async run(ctx) {
    // Loaded when the stage runs: the demo's stage list is read by every start of the CLI (for
    // `bulwark demo --help`), which would otherwise load the gateway and its dependencies each time.
    const [{ AttestedGatewayClient, GatewayClient, GatewayError, parsePolicy }, gateway, jose] =
      await Promise.all([
        import('../../gateway/client.js'),
        import('../../gateway/index.js'),
        import('jose'),
      ]);
    const { Gateway, gatewayConfig, modelMeasurement } = gateway;
    const { exportJWK, generateKeyPair, SignJWT } = jose;
    /** A request's HTTP status and code: 200 `answered`, or the gateway's refusal. */
    const outcome = async (p: Promise<unknown>): Promise<[number, string]> => {
      try {
        await p;
        return [200, 'answered'];
      } catch (e) {
        if (e instanceof GatewayError) return [e.status, e.code];
        throw e;
      }
    };
    const out = ctx.options.outDir;
    const pkgDir = join(out, 'package');
    const ds = ctx.state.dataset;
    // The case-study package the package stage signed; the baseline's only when that one is absent.
    const casePkg = ctx.state.served;
    const fallbackPath = join(out, `${BASELINE_NAME}.bwm`);
    const useServed = casePkg !== undefined && existsSync(casePkg.packagePath);
    const pkgPath = useServed ? casePkg.packagePath : fallbackPath;
    if (!ds || !ctx.state.baseline || !existsSync(pkgPath))
      return {
        blocks: [{ kind: 'text', text: 'Skipped: the package stage did not run.' }],
        status: 'skipped',
      };
    const fallbackNote = useServed
      ? ''
      : ` The case-study package is absent (${casePkg ? casePkg.packagePath : 'the package stage recorded none'}): ` +
        `the gateway serves ${BASELINE_NAME}.bwm instead.`;
    const isDp =
      useServed &&
      ctx.state.dp !== undefined &&
      casePkg.modelDigest === sha256Digest(await readFile(ctx.state.dp.path));
    const dir = join(out, 'gateway');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const { caPem } = await tlsFiles(dir);
    const issuer = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(issuer.publicKey)), kid: 'demo-1', alg: 'ES256', use: 'sig' };
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
    await writeFile(join(dir, 'policies.cedar'), POLICIES);
    // Predictions go to the demo's own audit log (the same SQLite file, a second writer in WAL mode,
    // docs/audit.md "several writers"), signed with its checkpoint key: one log holds the prediction and
    // the package, model, training run, dataset and keys it came from. Without it, a log of its own.
    const demoLog = ctx.state.audit;
    const demoDb = join(out, 'audit', 'audit.db');
    const demoKey = join(out, 'audit', 'log.key');
    const shared = demoLog !== undefined && existsSync(demoDb) && existsSync(demoKey);
    let auditStore = demoDb;
    let auditKey = demoKey;
    let vkey: string;
    if (shared) {
      vkey = (await readFile(join(out, 'audit', 'log.key.pub'), 'utf8')).trim();
    } else {
      const k = generateSignerKey('bulwark.demo/gateway');
      auditStore = join(dir, 'gateway-audit.db');
      auditKey = join(dir, 'audit.key');
      await writeFile(auditKey, k.skey, { mode: 0o600 });
      vkey = k.vkey;
    }
    // The demo runner's log has flushed what it acknowledged; the gateway's appends follow from here.
    if (demoLog) await demoLog.flush();
    const firstIndex = shared && demoLog ? (await demoLog.head()).size : 0;
    ctx.progress(0.1);

    ctx.progress(0.3);

    const config = gatewayConfig({
      server: {
        host: '127.0.0.1',
        port: 0,
        tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') },
      },
      metrics: { enabled: false },
      auth: {
        require: 'token',
        jwt: {
          issuer: ISSUER,
          audience: AUDIENCE,
          jwks: { file: join(dir, 'jwks.json') },
          algorithms: ['ES256'],
        },
      },
      policy: { files: [join(dir, 'policies.cedar')], models: { [MODEL]: { tenant: 'acme' } } },
      limits: {
        backend: 'memory',
        requestsPerSecond: 1000,
        queryBudget: { queries: 400, windowSeconds: 86_400 },
      },
      models: [
        {
          name: MODEL,
          package: pkgPath,
          // Served as "fraud"; the signed package is the case-study model (or the baseline), pinned by
          // digest when the package stage recorded it.
          packageModel: useServed ? casePkg.name : BASELINE_NAME,
          ...(useServed ? { digest: casePkg.packageDigest } : {}),
          keyring: join(pkgDir, 'keyring.json'),
          keyringPassphrase: { file: join(pkgDir, 'DEMO-ONLY-keyring-passphrase.txt') },
          trust: join(pkgDir, 'trust.yaml'),
          output: { topK: 1, roundDigits: 2 },
          // No detector files: the package carries its detectors, signed and encrypted with the model.
          detectors: {},
        },
      ],
      audit: { store: auditStore, signer: auditKey, checkpointSeconds: 0 },
      telemetry: { logLevel: 'silent' },
      // Attested sessions in software mode (keys in a worker process; NO hardware guarantee).
      enclave: { mode: 'software' },
    });
    const gw = await Gateway.start({ config, defaultMetrics: false });
    const clients: GatewayClient[] = [];
    const now = () => Math.floor(Date.now() / 1000);
    const token = (claims: Record<string, unknown> = {}, key = issuer.privateKey, expiresIn = 600) =>
      new SignJWT({
        sub: 'svc-scoring',
        client_id: 'svc-scoring',
        tenant: 'acme',
        scope: 'predict',
        jti: randomBytes(8).toString('hex'),
        ...claims,
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'demo-1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(now() - (expiresIn < 0 ? 7200 : 0))
        .setExpirationTime(now() + expiresIn)
        .sign(key);
    const client = (t?: string) => {
      const c = new GatewayClient({
        url: gw.url,
        ca: caPem,
        servername: 'localhost',
        ...(t !== undefined ? { token: t } : {}),
      });
      clients.push(c);
      return c;
    };
    try {
      const served = gw.models.get(MODEL);
      if (!served) throw new Error('model not served');
      const fields = served.loaded.inputFields;
      const rowOf = (i: number) => {
        const r = ds.row(i);
        return Object.fromEntries(fields.map((f) => [f, r[f] ?? null])) as Record<
          string,
          number | string | null
        >;
      };
      // Legitimate traffic: single rows of the data, as a scoring service sends them.
      const legit = client(await token());
      const n = ctx.options.quick ? 40 : 120;
      const rng = new SeededRng(ctx.options.seed + 9);
      let answered = 0;
      const legitCodes = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const [s, code] = await outcome(legit.inferRows(MODEL, [rowOf(rng.int(ds.rowCount))]));
        if (s === 200) answered++;
        else legitCodes.set(code, (legitCodes.get(code) ?? 0) + 1);
      }
      ctx.progress(0.5);

      // One sealed request through an attested session (software mode): the client verifies the
      // attestation against a policy pinning the served model's digest, then sends the row encrypted;
      // the same pipeline answers it. Software mode is refused by any hardware-requiring policy.
      let sealed = 'not run';
      let sealedOk = false;
      {
        const info = gw.enclave;
        const m = modelMeasurement(MODEL);
        if (info?.signerPublicKey) {
          const ac = new AttestedGatewayClient({
            url: gw.url,
            ca: caPem,
            servername: 'localhost',
            token: await token({ sub: 'svc-attested', client_id: 'svc-attested' }),
            policy: parsePolicy({
              requireHardware: false,
              measurements: { [m]: [info.measurements[m] as string] },
            }),
            roots: { software: [info.signerPublicKey] },
          });
          clients.push(ac);
          const claims = await ac.connect();
          const r = rowOf(1);
          const a = await ac.inferRows(MODEL, [r]);
          const p = await legit.inferRows(MODEL, [r]);
          sealedOk = JSON.stringify(a.outputs) === JSON.stringify(p.outputs);
          sealed =
            `${claims.format} attestation verified (hardware: ${claims.hardware}, ${m} = ${String(claims.measurements[m]).slice(0, 16)}…); ` +
            `sealed prediction ${sealedOk ? 'equals' : 'DIFFERS FROM'} the plain one. Software mode: no hardware guarantee, ` +
            'the host can read the worker and gateway memory; a hardware-requiring policy refuses it';
        }
      }

      const row = rowOf(0);
      const numeric = fields.find((f) => typeof row[f] === 'number') as string;
      const fieldInfo = served.validator.fields.find((f) => f.name === numeric);
      const attacks: [string, number, string][] = [];
      const record = async (name: string, p: Promise<unknown>) => {
        const [s, code] = await outcome(p);
        attacks.push([name, s, code]);
      };
      await record('no token', client().inferRows(MODEL, [row]));
      const attacker = await generateKeyPair('ES256');
      await record(
        'token signed by an attacker key (same kid)',
        client(await token({}, attacker.privateKey)).inferRows(MODEL, [row]),
      );
      await record(
        'expired token',
        client(await token({}, issuer.privateKey, -3600)).inferRows(MODEL, [row]),
      );
      await record(
        'another tenant (policy violation)',
        client(await token({ tenant: 'globex', sub: 'globex' })).inferRows(MODEL, [row]),
      );
      const raw = client(await token({ sub: 'svc-raw' }));
      const rawCall = (body: string) =>
        raw.request('POST', `/v2/models/${MODEL}/infer`, body).then((r) => {
          if (r.status !== 200)
            throw new GatewayError(r.status, (JSON.parse(r.body) as { code: string }).code, '');
        });
      await record('malformed JSON', rawCall('{"inputs": [{"name": '));
      await record(
        'prototype pollution ("__proto__" key)',
        rawCall('{"__proto__": {"admin": true}, "inputs": []}'),
      );
      await record(
        'a string where the schema says number',
        legit.inferRows(MODEL, [{ ...row, [numeric]: String(row[numeric]) }]),
      );
      await record(
        `out of range (${numeric} = ${((fieldInfo?.bounds?.max as number) ?? 1e6) * 10})`,
        legit.inferRows(MODEL, [{ ...row, [numeric]: ((fieldInfo?.bounds?.max as number) ?? 1e6) * 10 }]),
      );
      await record('a field the schema does not declare', legit.inferRows(MODEL, [{ ...row, is_admin: 1 }]));
      // Black-box probing: tiny variations of one input from one caller (the stateful detector).
      const prober = client(await token({ sub: 'svc-prober' }));
      let probed = 0;
      let probeOutcome: [number, string] = [200, 'answered'];
      for (let i = 0; i < 60 && probeOutcome[0] === 200; i++) {
        probeOutcome = await outcome(
          prober.inferRows(MODEL, [{ ...row, [numeric]: (row[numeric] as number) + i * 1e-3 }]),
        );
        if (probeOutcome[0] === 200) probed++;
      }
      attacks.push([`black-box probing (answered ${probed} near-identical queries first)`, ...probeOutcome]);
      // Extraction: random inputs within the public bounds from one caller (PRADA, then the budget).
      const thief = client(await token({ sub: 'svc-thief' }));
      let stolen = 0;
      let theft: [number, string] = [200, 'answered'];
      for (let i = 0; i < 600 && theft[0] === 200; i++) {
        const q: Record<string, number | string | null> = {};
        for (const f of served.validator.fields) {
          if (f.type === 'category' && f.categories)
            q[f.name] = f.categories[rng.int(f.categories.length)] as string;
          else if ((f.type === 'number' || f.type === 'integer') && f.bounds) {
            const lo = f.bounds.min as number;
            const hi = f.bounds.max as number;
            const v = rng.uniform(lo, hi);
            q[f.name] = f.type === 'integer' ? Math.round(v) : v;
          } else q[f.name] = row[f.name] ?? null;
        }
        theft = await outcome(thief.inferRows(MODEL, [q]));
        if (theft[0] === 200) stolen++;
      }
      attacks.push([`model extraction with random in-bounds queries (answered ${stolen} first)`, ...theft]);
      // Extraction with natural-looking queries (rows of the data): PRADA or, at the latest, the query budget.
      const copier = client(await token({ sub: 'svc-copier' }));
      let copied = 0;
      let copy: [number, string] = [200, 'answered'];
      for (let i = 0; i < 600 && copy[0] === 200; i++) {
        copy = await outcome(copier.inferRows(MODEL, [rowOf(rng.int(ds.rowCount))]));
        if (copy[0] === 200) copied++;
      }
      attacks.push([`model extraction with natural-looking queries (answered ${copied} first)`, ...copy]);
      ctx.progress(0.8);

      // The audit proof: the first legitimate prediction, in a signed checkpoint, verified with the public key.
      await gw.checkpoint();
      // The gateway holds its log as a writer (inline or on its own thread); the proof is read through a
      // reader of the same store.
      const log = await AuditLog.open({ store: { kind: 'sqlite', path: auditStore } });
      let entries: AuditEntry[];
      let proof = 'no prediction recorded';
      let pred: AuditEntry | undefined;
      try {
        // What the gateway appended: the entries after the demo log's head at its start.
        entries = (await log.tail((await log.head()).size - firstIndex)).filter((e) => e.index >= firstIndex);
        pred = entries.find((e) => e.type === 'prediction');
        if (pred) {
          const bundle = await log.prove(pred.id);
          const v = verifyInclusionBundle(bundle, vkey);
          proof = `entry ${pred.index} (${pred.id}) of ${shared ? "the demo's log (audit/audit.db)" : "the gateway's own log"} is in the checkpoint of size ${v.checkpoint.size}, signed by ${vkey.split('+').slice(0, 2).join('+')}: VERIFIED`;
          await writeFile(join(dir, 'prediction-proof.json'), JSON.stringify(bundle, null, 2));
        }
      } finally {
        await log.close();
      }
      const denials = entries.filter((e) => e.type === 'request.denied');
      const stageOf = new Map<string, string>();
      for (const e of denials) {
        const data = e.data as { code: string; stage: string };
        stageOf.set(data.code, data.stage);
      }
      const blocks: Block[] = [
        {
          kind: 'text',
          text:
            `${useServed ? `The case-study package (${casePkg?.name}.bwm${isDp ? ', the DP model at ε = 0.5' : ''})` : 'The packaged baseline model'} is served by the Bulwark gateway (bulwark serve) on 127.0.0.1 over TLS 1.3: its signature ` +
            `verified and its ONNX decrypted in memory at start, every request authenticated (JWT access tokens from a local issuer), ` +
            `authorised by Cedar (tenants predict on their own models), limited per caller, validated against the manifest's schema, ` +
            `screened by the Mahalanobis, stateful and PRADA detectors, answered with a rounded top-1 label, and recorded in the ` +
            `${shared ? "demo's audit log (audit/audit.db, the gateway as a second writer)" : "gateway's own audit log (gateway/gateway-audit.db: the demo's log was not open)"} before the answer leaves. ` +
            `The detectors travel inside the package, encrypted and signed with the model (the package stage fitted them on held-out traffic, not the training file); no detector file sits on the gateway's disk. ` +
            `Refusals are 4xx JSON bodies with a stable code, and are audited too.${fallbackNote}`,
        },
        {
          kind: 'facts',
          facts: [
            [
              'model',
              `${served.name} ${served.version} (${served.loaded.origin}, signer ${served.loaded.signer?.slice(0, 16) ?? '-'}…)`,
            ],
            [
              'legitimate requests answered',
              `${answered} of ${n}${legitCodes.size ? ` (refused: ${[...legitCodes].map(([c, k]) => `${c} x${k}`).join(', ')})` : ''}`,
            ],
            [
              'audit entries',
              `${entries.length} (${entries.filter((e) => e.type === 'prediction').length} predictions, ${denials.length} refusals)`,
            ],
            ['audit proof', proof],
            ['attested session', sealed],
          ],
        },
        {
          kind: 'table',
          caption: 'Each attack, the HTTP answer, the code and the pipeline stage that refused it',
          columns: ['attempt', 'HTTP', 'code', 'stage'],
          rows: attacks.map(([a, s, c]) => [a, s, c, stageOf.get(c) ?? (s === 200 ? '-' : '?')]),
        },
      ];
      const refusedAll = attacks.every(([, s]) => s >= 400 && s < 500);
      return {
        blocks,
        summary: {
          legitimateAnswered: answered,
          legitimateSent: n,
          attacksRefused: attacks.filter(([, s]) => s >= 400 && s < 500).length,
          attacks: attacks.length,
          allAttacksRefused: refusedAll,
          auditEntries: entries.length,
          auditLog: shared ? 'audit/audit.db' : 'gateway/gateway-audit.db',
          packageDigest: served.loaded.packageDigest ?? 'n/a',
          modelDigest: served.loaded.modelDigest,
          servedCaseStudyPackage: useServed,
          proofVerified: pred !== undefined,
          sealedRequestMatches: sealedOk,
        },
      };
    } finally {
      for (const c of clients) c.close();
      await gw.close();
    }
  },
};
