/**
 * Fixtures for the gateway pipeline tests: a small seeded fraud model trained here (ONNX with its
 * preprocessing), its schema, calibrated detectors, TLS certificates from a test CA, a local JWKS, Cedar
 * policies and an audit signing key, all in a temporary folder; and a started gateway over real TLS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSignerKey } from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';
import { Dataset, type Row, type Schema, saveSchema } from '../../src/data/index.js';
import { type GatewayConfig, gatewayConfig } from '../../src/gateway/config.js';
import { Gateway, type GatewayOptions } from '../../src/gateway/server.js';
import {
  benignStreams,
  MahalanobisDetector,
  PradaDetector,
  StatefulDetector,
} from '../../src/robust/index.js';
import { trainTabular } from '../../src/train/index.js';
import {
  AUDIENCE,
  type Ca,
  goodClaims,
  ISSUER,
  type IssuerKeys,
  issuerKey,
  type Leaf,
  makeCa,
  makeLeaf,
  mint,
} from './auth-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
export const TRUST_DOMAIN = 'bulwark.example';
export const CLIENT_ID = `spiffe://${TRUST_DOMAIN}/ns/apps/sa/scorer`;

export const SCHEMA: Schema = {
  version: 1,
  name: 'fraud-test',
  label: 'fraud',
  fields: [
    {
      name: 'amount',
      type: 'number',
      nullable: false,
      bounds: { min: 0, max: 5000 },
      sensitivity: 'internal',
    },
    { name: 'age', type: 'integer', nullable: false, bounds: { min: 18, max: 90 }, sensitivity: 'personal' },
    { name: 'kind', type: 'category', nullable: false, categories: ['A', 'B', 'C'], sensitivity: 'internal' },
    { name: 'fraud', type: 'category', nullable: false, categories: ['no', 'yes'], sensitivity: 'internal' },
  ],
};

/** Seeded rows: fraud is likelier for large amounts of kind C and for the young. */
export function makeRows(n: number, seed: number): Row[] {
  const rng = new SeededRng(seed);
  const rows: Row[] = [];
  for (let i = 0; i < n; i++) {
    const amount = Math.round(rng.uniform(0, 1000) * 100) / 100;
    const age = rng.intBetween(18, 90);
    const kind = ['A', 'B', 'C'][rng.int(3)] as string;
    const z = (amount - 600) / 120 + (kind === 'C' ? 1.5 : 0) - (age - 30) / 25 + rng.normal(0, 0.5);
    rows.push({ amount, age, kind, fraud: z > 0.5 ? 'yes' : 'no' });
  }
  return rows;
}

export interface Fixture {
  dir: string;
  ca: Ca;
  server: Leaf;
  client: Leaf;
  issuer: IssuerKeys;
  /** A valid access token for tenant acme with the predict scope. */
  token: (extra?: Record<string, unknown>) => Promise<string>;
  config: (overrides?: Partial<Record<keyof GatewayConfig, unknown>>) => GatewayConfig;
  /** Clean rows for legitimate traffic (without the label). */
  rows: Row[];
  cleanup(): void;
}

let cached: Promise<Omit<Fixture, 'config' | 'token' | 'cleanup'>> | undefined;

async function build(): Promise<Omit<Fixture, 'config' | 'token' | 'cleanup'>> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-gw-'));
  const rows = makeRows(600, 11);
  const ds = Dataset.fromRows(rows, { amount: 'number', age: 'number', kind: 'string', fraud: 'string' });
  const trained = await trainTabular(ds, {
    label: 'fraud',
    model: 'mlp',
    hidden: [8],
    epochs: 8,
    seed: 3,
    features: ['amount', 'age', 'kind'],
  });
  writeFileSync(join(dir, 'fraud.onnx'), trained.onnx);
  await saveSchema(join(dir, 'schema.yaml'), SCHEMA);
  const tr = trained.trainSet;
  const d = trained.features.length;
  const maha = new MahalanobisDetector();
  await maha.fit(tr.x, tr.rows, tr.y);
  // Calibrated on fresh rows of the same distribution, at a low per-row FPR (batches compound it).
  const calib = trained.pipeline.transform(
    Dataset.fromRows(makeRows(1500, 21), {
      amount: 'number',
      age: 'number',
      kind: 'string',
      fraud: 'string',
    }),
  );
  await maha.calibrate(calib.matrix, calib.rows, 0.002);
  writeFileSync(join(dir, 'mahalanobis.json'), JSON.stringify(maha.toJSON()));
  const stateful = new StatefulDetector({ inputs: d, k: 5, history: 60 }).fit(tr.x, tr.rows);
  stateful.calibrate(benignStreams(tr.x, tr.rows, d, 60, 60, 5), 0.05);
  writeFileSync(join(dir, 'stateful.json'), JSON.stringify(stateful.toJSON()));
  const prada = new PradaDetector({ inputs: d, classes: 2, minQueries: 20, window: 200 }).fit(tr.x, tr.rows);
  prada.calibrate(benignStreams(tr.x, tr.rows, d, 40, 100, 6, tr.y), 0.05);
  writeFileSync(join(dir, 'prada.json'), JSON.stringify(prada.toJSON()));

  const ca = await makeCa();
  const server = await makeLeaf(ca, { dns: ['localhost'], serverAuth: true });
  const client = await makeLeaf(ca, { uris: [CLIENT_ID] });
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'server.pem'), server.pem);
  // Private keys only their owner can read, as a deployment keeps them (else every start warns).
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  const issuer = await issuerKey('ES256', 'k1');
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [issuer.publicJwk] }));
  const { skey } = generateSignerKey('bulwark.test/gateway');
  writeFileSync(join(dir, 'audit.key'), skey, { mode: 0o600 });
  writeFileSync(
    join(dir, 'policies.cedar'),
    (await import('node:fs')).readFileSync(join(ROOT, 'examples', 'gateway', 'policies.cedar'), 'utf8'),
  );
  writeFileSync(
    join(dir, 'schema.cedarschema'),
    (await import('node:fs')).readFileSync(join(ROOT, 'examples', 'gateway', 'bulwark.cedarschema'), 'utf8'),
  );
  const clean = makeRows(200, 99).map(({ fraud: _label, ...r }) => r);
  return { dir, ca, server, client, issuer, rows: clean };
}

/** Builds (once per process) the model, keys and files, and returns helpers around them. */
export async function fixture(): Promise<Fixture> {
  cached ??= build();
  const f = await cached;
  const dir = f.dir;
  return {
    ...f,
    token: (extra = {}) => {
      const now = Math.floor(Date.now() / 1000);
      return mint(f.issuer, goodClaims({ iat: now, exp: now + 600, nbf: now - 5, ...extra }));
    },
    config: (overrides = {}) =>
      gatewayConfig({
        server: {
          host: '127.0.0.1',
          port: 0,
          tls: {
            cert: join(dir, 'server.pem'),
            key: join(dir, 'server.key'),
            clientCa: join(dir, 'ca.pem'),
            clientAuth: 'request',
          },
          drainSeconds: 2,
        },
        metrics: { host: '127.0.0.1', port: 0 },
        auth: {
          require: 'either',
          mtls: {
            trustDomains: [TRUST_DOMAIN],
            identities: [
              { spiffeId: `spiffe://${TRUST_DOMAIN}/ns/apps/*`, tenant: 'acme', roles: ['predictor'] },
            ],
          },
          jwt: {
            issuer: ISSUER,
            audience: AUDIENCE,
            jwks: { file: join(dir, 'jwks.json') },
            algorithms: ['ES256'],
          },
        },
        policy: {
          files: [join(dir, 'policies.cedar')],
          schemaFile: join(dir, 'schema.cedarschema'),
          models: { fraud: { tenant: 'acme' } },
        },
        limits: { backend: 'memory', requestsPerSecond: 100_000 },
        models: [
          {
            name: 'fraud',
            onnx: join(dir, 'fraud.onnx'),
            insecure: true,
            schema: join(dir, 'schema.yaml'),
            output: { topK: 1, roundDigits: 2 },
            detectors: {
              mahalanobis: join(dir, 'mahalanobis.json'),
              stateful: join(dir, 'stateful.json'),
              prada: join(dir, 'prada.json'),
            },
          },
        ],
        audit: {
          store: join(dir, `audit-${process.pid}-${Math.random().toString(36).slice(2)}.db`),
          signer: join(dir, 'audit.key'),
          checkpointSeconds: 0,
        },
        telemetry: { logLevel: 'silent' },
        ...overrides,
      }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A TCP port free on 127.0.0.1 now: for a gateway whose URL must be known before it starts (a DPoP
 * proof names the gateway's origin).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts a gateway on a port known before it starts ({@link freePort}), retrying on another port when
 * that one was taken in between: a port from the kernel's ephemeral range can become the local port
 * of any outgoing connection (a test's PostgreSQL or Redis client) after the probe closes it, and CI
 * failed once on EADDRINUSE that way.
 */
export async function startGatewayOnFreePort(
  make: (port: number) => GatewayConfig,
  extra: Partial<GatewayOptions> = {},
): Promise<{ gw: Gateway; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { gw: await startGateway(make(port), extra), port };
    } catch (e) {
      if (attempt >= 5 || !/EADDRINUSE/.test(String((e as Error).message))) throw e;
    }
  }
}

/** Starts a gateway with the fixture config; logs silenced. */
export function startGateway(config: GatewayConfig, extra: Partial<GatewayOptions> = {}): Promise<Gateway> {
  return Gateway.start({ config, defaultMetrics: false, ...extra });
}

/** The v2 request for rows of the fixture schema. */
export function v2Body(rows: readonly Row[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    inputs: [
      { name: 'amount', shape: [rows.length], datatype: 'FP64', data: rows.map((r) => r['amount']) },
      { name: 'age', shape: [rows.length], datatype: 'INT64', data: rows.map((r) => r['age']) },
      { name: 'kind', shape: [rows.length], datatype: 'BYTES', data: rows.map((r) => r['kind']) },
    ],
    ...extra,
  };
}

/** A TCP relay to a real service that the test can cut (every connection dropped) and restore. */
export class Relay {
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  port = 0;
  constructor(
    readonly host: string,
    readonly targetPort: number,
  ) {}
  async up(): Promise<void> {
    const s = createServer((client) => {
      const upstream = tcpConnect(this.targetPort, this.host);
      this.#sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((r) => s.listen(this.port, '127.0.0.1', r));
    this.port = (s.address() as { port: number }).port;
    this.#server = s;
  }
  async down(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    for (const x of this.#sockets) x.destroy();
    this.#sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
