import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { FetchLike } from '../../attest/index.js';
import { isBulwarkError } from '../../core/index.js';
import type { Block } from '../../report/index.js';
import type { DemoStage } from '../stage.js';

const REQUESTS = 5;
const ROWS_PER_REQUEST = 20;

/** The shared attestation samples (`BULWARK_ATTESTATION`, else ../shared/attestation next to the repository). */
function samplesDir(): string {
  return (
    process.env['BULWARK_ATTESTATION'] ??
    fileURLToPath(new URL('../../../../shared/attestation', import.meta.url))
  );
}

const short = (h: string) => (h.length > 24 ? `${h.slice(0, 24)}…` : h);

/**
 * Stage: one client runs an attested, end-to-end encrypted session against the baseline model served
 * by a software-mode enclave (a separate worker process holding the model and its keys), over HTTP on
 * the loopback. The client verifies the attestation against a policy (the model's digest, no debug,
 * five minutes) before it sends anything. Software mode is refused by a production policy, and the
 * report says plainly that it gives no hardware guarantee. The real AWS Nitro sample is verified too
 * when the shared folder is present.
 */
export const attestStage: DemoStage = {
  id: 'attest',
  title: 'Confidential inference: attested, encrypted session (software mode)',
  async run(ctx) {
    // Loaded when the stage runs: the demo's stage list is read by every start of the CLI (for
    // `bulwark demo --help`), which would otherwise load the attestation stack each time.
    const {
      AttestedClient,
      attestedHttpHandler,
      encodeInferenceRequest,
      parseInferenceResponse,
      parsePolicy,
      peekCoseTimestamp,
      SoftwareEnclave,
      verifyAttestation,
    } = await import('../../attest/index.js');
    const baseline = ctx.state.baseline;
    if (!baseline) throw new Error('the attest stage needs the baseline model');
    const model = new Uint8Array(await readFile(baseline.path));
    const modelDigest = createHash('sha384').update(model).digest('hex');
    const t0 = performance.now();
    const enclave = await SoftwareEnclave.start({ model, moduleId: 'bulwark-demo-software-enclave' });
    const startMs = performance.now() - t0;
    const server = createServer(attestedHttpHandler(enclave, '/v1/attested'));
    const blocks: Block[] = [];
    const summary: Record<string, string | number | boolean> = {};
    try {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/attested`;
      const fetch = globalThis.fetch as unknown as FetchLike;
      const policy = parsePolicy({
        requireHardware: false,
        allowDebug: false,
        maxAgeSeconds: 300,
        measurements: { model: [modelDigest] },
      });
      const client = new AttestedClient({
        baseUrl: base,
        fetch,
        policy,
        roots: { software: [enclave.signerPublicKey] },
      });
      const t1 = performance.now();
      await client.connect();
      const firstConnectMs = performance.now() - t1;
      // Again with a fresh nonce: the first includes the HTTP client's own start-up.
      const t1b = performance.now();
      const claims = await client.connect();
      const connectMs = performance.now() - t1b;
      ctx.progress(0.3);

      // Encrypted predictions on held-out rows, checked against the same network run here.
      const r = baseline.result;
      const d = r.testSet.rows > 0 ? r.testSet.x.length / r.testSet.rows : 0;
      const local = r.network.predictProba(r.testSet.x, r.testSet.rows);
      let maxDiff = 0;
      let rows = 0;
      const t2 = performance.now();
      for (let q = 0; q < REQUESTS && rows < r.testSet.rows; q++) {
        const n = Math.min(ROWS_PER_REQUEST, r.testSet.rows - rows);
        const inputs = Array.from({ length: n }, (_, i) =>
          Array.from(r.testSet.x.subarray((rows + i) * d, (rows + i + 1) * d)),
        );
        const res = parseInferenceResponse(await client.request(encodeInferenceRequest(inputs)));
        if (res.error)
          throw new Error(`the enclave refused the demo request: ${res.error.code}: ${res.error.message}`);
        const probs = res.outputs?.['probabilities']?.data ?? [];
        probs.forEach((p, i) => {
          maxDiff = Math.max(maxDiff, Math.abs(p - (local[rows * 2 + i] as number)));
        });
        rows += n;
      }
      const requestsMs = (performance.now() - t2) / REQUESTS;
      ctx.progress(0.7);

      // A production client (hardware required) refuses the same enclave.
      let production = 'accepted (unexpected)';
      try {
        await new AttestedClient({
          baseUrl: base,
          fetch,
          policy: parsePolicy({}),
          roots: { software: [enclave.signerPublicKey] },
        }).connect();
      } catch (e) {
        production = isBulwarkError(e) ? `refused: ${e.code}` : `failed: ${(e as Error).message}`;
      }

      blocks.push(
        {
          kind: 'text',
          text:
            'SOFTWARE MODE GIVES NO HARDWARE GUARANTEE. The model and its keys run in a separate worker process whose attestation ' +
            'is signed by a key that process generated; the host, its operator and its kernel can read that process. What this ' +
            'stage shows is the protocol working end to end: the client verified the attestation against its policy (the ' +
            'model digest, no debug, at most 5 minutes old) before sending anything, then every request and response travelled ' +
            'encrypted (HPKE RFC 9180 key set-up, AES-256-GCM records, replay window). With a Nitro or SEV-SNP enclave the same ' +
            'client, with a policy requiring hardware, gets the guarantee; here that policy refuses the enclave, as it must.',
        },
        {
          kind: 'facts',
          facts: [
            ['format', claims.format],
            ['hardware', claims.hardware],
            ['debug', claims.debug],
            ['module', String(claims.details['moduleId'])],
            ['attested at', claims.time?.toISOString() ?? 'n/a'],
            ['nonce bound', claims.nonceVerified],
            ['model measurement (SHA-384)', short(claims.measurements['model'] ?? '')],
            ['runtime measurement (SHA-384)', short(claims.measurements['runtime'] ?? '')],
            ['HPKE public key', short(Buffer.from(claims.publicKey ?? []).toString('hex'))],
            ['signer key (SHA-256)', short(claims.trustAnchor)],
            ['enclave worker pid', enclave.pid],
            ['production policy (hardware required)', production],
          ],
        },
        {
          kind: 'table',
          columns: ['step', 'value'],
          rows: [
            ['worker start (model load, key generation)', `${startMs.toFixed(0)} ms`],
            [
              'first attestation fetch + verify + session set-up (includes HTTP client start-up)',
              `${firstConnectMs.toFixed(1)} ms`,
            ],
            [
              'again with a fresh nonce (fetch over loopback HTTP + verify + set-up)',
              `${connectMs.toFixed(1)} ms`,
            ],
            [
              `encrypted requests (${ROWS_PER_REQUEST} rows each), mean round trip`,
              `${requestsMs.toFixed(2)} ms`,
            ],
            ['rows predicted through the session', rows],
            ['max |p_enclave − p_local|', maxDiff.toExponential(2)],
          ],
          caption: 'Loopback HTTP on a shared machine; bench/results/attest.json has the measured costs.',
        },
      );
      Object.assign(summary, {
        format: claims.format,
        hardware: claims.hardware,
        debug: claims.debug,
        rows,
        maxProbabilityDiff: maxDiff,
        productionPolicy: production,
        connectMs: Number(connectMs.toFixed(2)),
      });
    } finally {
      await new Promise((r) => server.close(r));
      await enclave.close();
    }
    ctx.progress(0.85);

    // The real AWS Nitro sample, at its own time (its leaf certificate lived three hours in 2022).
    const nitro = join(samplesDir(), 'nitro', 'qos_mock_attestation_doc.bin');
    if (existsSync(nitro)) {
      const doc = new Uint8Array(await readFile(nitro));
      const at = peekCoseTimestamp(doc) ?? new Date();
      const c = await verifyAttestation('nitro', doc, { at });
      blocks.push(
        {
          kind: 'text',
          text: 'A real AWS Nitro Enclaves attestation document (the shared sample), verified at its own timestamp:',
        },
        {
          kind: 'facts',
          facts: [
            ['format', c.format],
            ['hardware', c.hardware],
            ['root (pinned AWS Nitro root, SHA-256)', c.trustAnchor],
            ['module', String(c.details['moduleId'])],
            ['time', c.time?.toISOString() ?? 'n/a'],
            ['PCR0', short(c.measurements['PCR0'] ?? '')],
            ['debug', c.debug],
          ],
        },
      );
      summary['nitroSample'] = 'verified';
    } else {
      blocks.push({
        kind: 'text',
        text: `The AWS Nitro sample was not found in ${samplesDir()} (set BULWARK_ATTESTATION): not verified.`,
      });
      summary['nitroSample'] = 'absent';
    }
    ctx.progress(1);
    return { blocks, summary };
  },
};
