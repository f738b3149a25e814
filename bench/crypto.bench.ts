/**
 * Crypto benchmark (issue #4), Bulwark and its peers side by side in one run:
 *
 * - Field-level encryption of transaction records (7 personal fields each: first and last name, card
 *   number, national id, e-mail, phone, date of birth) with associated data binding dataset, column and
 *   row: Bulwark's protected-value format (randomized AES-256-GCM with CTX key commitment) against the
 *   AWS Encryption SDK for JavaScript (`@aws-crypto/client-node`, raw AES keyring, one message per
 *   value with the same binding as its encryption context, committing suite without signatures, the
 *   fastest committing suite it has). Records per second, and bytes of overhead per value. Goals: at
 *   least 20x the SDK, under 40 bytes per value.
 * - Bulk framed file encryption and decryption in GB/s at 1 MiB frames (the default frame size)
 *   against `openssl speed -evp aes-256-gcm -bytes 1048576 -elapsed` (and `-decrypt`) at the same
 *   frame size, runs interleaved so both see the same machine load: Bulwark with its default worker
 *   threads (os.availableParallelism(); the process's pool starts inside the first repeat's timing and is reused) and on one thread
 *   (`threads: 1`), so both figures are on record. Goal: at least 80 % of OpenSSL; size overhead under
 *   0.01 %.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { collect } from '../src/bench/index.js';
import { openCsv, writeTransactionsCsv } from '../src/data/index.js';
import { decryptStream, encryptFile, encryptStream, gcmBackend, Keyring } from '../src/keys/index.js';
import { ColumnKeys, decodeCell, parseFieldHeader } from '../src/protect/index.js';
import { type BenchContext, type Benchmark, type Figure, median } from './harness.js';

const run = promisify(execFile);
const FIELDS = ['first_name', 'last_name', 'card_number', 'national_id', 'email', 'phone', 'date_of_birth'];
const FRAME = 1 << 20;

interface Records {
  ids: string[];
  values: string[][];
}

async function makeRecords(dir: string, n: number): Promise<Records> {
  const path = join(dir, 'tx.csv');
  await writeTransactionsCsv(path, { rows: n, fraudRate: 0.02, seed: 4 });
  const reader = await openCsv(path);
  const idx = FIELDS.map((f) => reader.columns.indexOf(f));
  const id = reader.columns.indexOf('transaction_id');
  const ids: string[] = [];
  const values: string[][] = [];
  for await (const r of reader) {
    ids.push(r.values[id]!);
    values.push(idx.map((j) => r.values[j] ?? ''));
  }
  rmSync(path);
  return { ids, values };
}

/** Bulwark: every field of every record through the protected-value format. */
function bulwarkEncrypt(
  rec: Records,
  cols: ColumnKeys[],
  n: number,
): { cells: string[][]; plainBytes: number; cellBytes: number; rawBytes: number } {
  const cells: string[][] = [];
  const nonces = Buffer.allocUnsafe(12 * 4096);
  let off = nonces.length;
  let plainBytes = 0;
  let cellBytes = 0;
  for (let i = 0; i < n; i++) {
    const v = rec.values[i]!;
    const out: string[] = new Array(v.length);
    for (let j = 0; j < v.length; j++) {
      if (off === nonces.length) {
        randomFillSync(nonces);
        off = 0;
      }
      out[j] = cols[j]!.encrypt(v[j]!, rec.ids[i]!, nonces.subarray(off, off + 12));
      off += 12;
    }
    cells.push(out);
  }
  let rawBytes = 0;
  for (let i = 0; i < Math.min(n, 2000); i++) {
    for (let j = 0; j < FIELDS.length; j++) {
      plainBytes += Buffer.byteLength(rec.values[i]![j]!);
      cellBytes += cells[i]![j]!.length;
      rawBytes += decodeCell(cells[i]![j]!, 'x').length;
    }
  }
  return { cells, plainBytes, cellBytes, rawBytes };
}

function bulwarkDecrypt(rec: Records, cols: ColumnKeys[], cells: string[][]): void {
  for (let i = 0; i < cells.length; i++) {
    for (let j = 0; j < FIELDS.length; j++) {
      const b = decodeCell(cells[i]![j]!, 'x');
      const got = cols[j]!.decrypt(b, parseFieldHeader(b, 'x'), rec.ids[i]!, 'x');
      if (got !== rec.values[i]![j]) throw new Error('bulwark decrypt mismatch');
    }
  }
}

async function fieldBench(
  ctx: BenchContext,
  figures: Figure[],
  facts: Record<string, string | number | boolean>,
  notes: string[],
): Promise<void> {
  const n = ctx.quick ? 10_000 : 100_000;
  const sdkN = ctx.quick ? 100 : 400;
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-crypto-'));
  try {
    ctx.log(`generating ${n} records`);
    const rec = await makeRecords(dir, n);
    const dek = randomBytes(32);
    const dataset = randomBytes(16);
    const cols = FIELDS.map((f) => new ColumnKeys(dek, dataset, f, 0, 0));
    const sdk = await import('@aws-crypto/client-node');
    const { encrypt, decrypt } = sdk.buildClient(sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
    const keyring = new sdk.RawAesKeyringNode({
      keyName: 'bench',
      keyNamespace: 'bulwark-bench',
      unencryptedMasterKey: randomBytes(32),
      wrappingSuite: sdk.RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    });
    const suite = sdk.AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
    const datasetHex = dataset.toString('hex');
    const sdkEnc: number[] = [];
    const sdkDec: number[] = [];
    const bwEnc: number[] = [];
    const bwDec: number[] = [];
    let sdkOverhead = 0;
    let sizes = { plainBytes: 0, cellBytes: 0, rawBytes: 0 };
    const sdkRepeats = Math.min(ctx.repeats, 3);
    const fieldRepeats = Math.min(ctx.repeats, 3);
    for (let r = 0; r < fieldRepeats; r++) {
      ctx.log(`fields: repeat ${r + 1}/${fieldRepeats}`);
      let t0 = performance.now();
      const e = bulwarkEncrypt(rec, cols, n);
      bwEnc.push(n / ((performance.now() - t0) / 1000));
      sizes = e;
      t0 = performance.now();
      bulwarkDecrypt(rec, cols, e.cells);
      bwDec.push(n / ((performance.now() - t0) / 1000));
      if (r >= sdkRepeats) continue;
      // The SDK on a subset (its rate is per record, comparable): one message per value.
      const msgs: Buffer[] = [];
      let over = 0;
      t0 = performance.now();
      for (let i = 0; i < sdkN; i++) {
        for (let j = 0; j < FIELDS.length; j++) {
          const pt = Buffer.from(rec.values[i]![j]!, 'utf8');
          const { result } = await encrypt(keyring, pt, {
            encryptionContext: { dataset: datasetHex, column: FIELDS[j]!, row: rec.ids[i]! },
            suiteId: suite,
          });
          over += result.length - pt.length;
          msgs.push(result);
        }
      }
      sdkEnc.push(sdkN / ((performance.now() - t0) / 1000));
      sdkOverhead = over / (sdkN * FIELDS.length);
      t0 = performance.now();
      for (let k = 0; k < msgs.length; k++) {
        const { plaintext } = await decrypt(keyring, msgs[k]!);
        const i = Math.floor(k / FIELDS.length);
        if (plaintext.toString('utf8') !== rec.values[i]![k % FIELDS.length])
          throw new Error('sdk decrypt mismatch');
      }
      sdkDec.push(sdkN / ((performance.now() - t0) / 1000));
    }
    const sdkVersion = (await import('@aws-crypto/client-node/package.json', { with: { type: 'json' } }))
      .default.version as string;
    const peer = `AWS Encryption SDK (client-node ${sdkVersion})`;
    figures.push(
      {
        id: 'fields.encrypt.bulwark',
        label: `field encryption, ${FIELDS.length} fields/record`,
        system: 'bulwark',
        unit: 'records/s',
        better: 'higher',
        samples: bwEnc,
      },
      {
        id: 'fields.encrypt.sdk',
        label: `field encryption, ${FIELDS.length} fields/record`,
        system: peer,
        unit: 'records/s',
        better: 'higher',
        samples: sdkEnc,
      },
      {
        id: 'fields.decrypt.bulwark',
        label: `field decryption, ${FIELDS.length} fields/record`,
        system: 'bulwark',
        unit: 'records/s',
        better: 'higher',
        samples: bwDec,
      },
      {
        id: 'fields.decrypt.sdk',
        label: `field decryption, ${FIELDS.length} fields/record`,
        system: peer,
        unit: 'records/s',
        better: 'higher',
        samples: sdkDec,
      },
    );
    const values = Math.min(n, 2000) * FIELDS.length;
    const bwOverhead = (sizes.rawBytes - sizes.plainBytes) / values;
    const bwTextOverhead = (sizes.cellBytes - sizes.plainBytes) / values;
    figures.push(
      {
        id: 'fields.overhead.bulwark',
        label: 'overhead per value (binary)',
        system: 'bulwark',
        unit: 'bytes',
        better: 'lower',
        samples: [bwOverhead],
      },
      {
        id: 'fields.overhead_text.bulwark',
        label: 'overhead per value (base64url CSV cell)',
        system: 'bulwark',
        unit: 'bytes',
        better: 'lower',
        samples: [bwTextOverhead],
      },
      {
        id: 'fields.overhead.sdk',
        label: 'overhead per value (binary)',
        system: peer,
        unit: 'bytes',
        better: 'lower',
        samples: [sdkOverhead],
      },
    );
    facts['fields.records'] = n;
    facts['fields.sdk_records'] = sdkN;
    facts['fields.mean_plaintext_bytes'] = Math.round((sizes.plainBytes / values) * 100) / 100;
    notes.push(
      `Field encryption: ${n} records x ${FIELDS.length} personal fields for Bulwark; the SDK, at ${Math.round(1000 / (sdkEnc[0] ?? 1))} ms per record, runs on the first ${sdkN} records (rates are per record).`,
      `SDK suite: ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY (committing, no signature); encryption context {dataset, column, row} as Bulwark's associated data. Its default suite adds an ECDSA P-384 signature per message and is slower still.`,
      `Overhead per value: Bulwark's binary format adds ${bwOverhead.toFixed(1)} bytes (1 header + 1 key generation + 12 nonce + 16 committed tag); in a CSV cell, base64url makes it ${bwTextOverhead.toFixed(1)} bytes for these ${(sizes.plainBytes / values).toFixed(1)}-byte values.`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function opensslSpeed(
  decrypt: boolean,
  seconds: number,
  env: Record<string, string> = {},
): Promise<number> {
  const args = [
    'speed',
    ...(decrypt ? ['-decrypt'] : []),
    '-evp',
    'aes-256-gcm',
    '-bytes',
    String(FRAME),
    '-elapsed',
    '-seconds',
    String(seconds),
  ];
  const { stdout } = await run('openssl', args, { maxBuffer: 1 << 20, env: { ...process.env, ...env } });
  const m = /aes-256-gcm\s+([\d.]+)k/i.exec(stdout);
  if (!m) throw new Error(`cannot parse openssl speed output: ${stdout.slice(-200)}`);
  return (Number(m[1]) * 1000) / 1e9;
}

/**
 * GB/s of `pass` (which processes and returns a number of bytes) repeated for about `seconds`, as
 * `openssl speed -seconds` times its loop: a 64 MiB pass takes some 15 ms, short enough for one
 * scheduler hiccup on this shared machine to halve a sample. Starts after a full garbage collection.
 */
async function forAbout(seconds: number, pass: () => Promise<number>): Promise<number> {
  collect();
  let bytes = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    bytes += await pass();
    t = performance.now();
  } while (t - t0 < seconds * 1000);
  return bytes / 1e9 / ((t - t0) / 1000);
}

/** node:crypto's AES-256-GCM, one call per 1 MiB buffer: the primitive alone, timed like the stream. */
function nodeGcm(data: Buffer, seconds: number): Promise<number> {
  const key = randomBytes(32);
  return forAbout(seconds, async () => {
    for (let o = 0; o < data.length; o += FRAME) {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
      c.update(data.subarray(o, o + FRAME));
      c.final();
      c.getAuthTag();
    }
    return data.length;
  });
}

/** OPENSSL_ia32cap mask that hides AES-NI from OpenSSL (bit 57 of the first capability word). */
const NO_AESNI = { OPENSSL_ia32cap: '~0x200000000000000' };

/**
 * node:crypto AES-256-GCM in a child Node process with AES-NI masked: whether the Node binary's own
 * OpenSSL uses AES-NI at all (the ratio to the unmasked primitive shows it).
 */
async function nodeGcmMasked(mib: number): Promise<number> {
  const script = `const c=require('node:crypto');const d=c.randomFillSync(Buffer.allocUnsafe(${mib}<<20));const k=c.randomBytes(32);const t=performance.now();for(let o=0;o<d.length;o+=${FRAME}){const x=c.createCipheriv('aes-256-gcm',k,c.randomBytes(12));x.update(d.subarray(o,o+${FRAME}));x.final();x.getAuthTag();}console.log(d.length/1e9/((performance.now()-t)/1000));`;
  const r = await run(process.execPath, ['-e', script], { env: { ...process.env, ...NO_AESNI } });
  const v = Number(r.stdout.trim());
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`node with AES-NI masked: unexpected output ${r.stdout}`);
  return v;
}

function* chunks(buf: Buffer, size: number): Generator<Buffer> {
  for (let o = 0; o < buf.length; o += size) yield buf.subarray(o, Math.min(buf.length, o + size));
}

async function bulkBench(
  ctx: BenchContext,
  figures: Figure[],
  facts: Record<string, string | number | boolean>,
  notes: string[],
): Promise<void> {
  const mib = ctx.quick ? 32 : 64;
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-bulk-'));
  try {
    const kr = await Keyring.create(join(dir, 'k.json'), {
      secret: { value: 'bench' },
      scrypt: { N: 1024, r: 8, p: 1 },
    });
    await kr.createKey('data');
    const data = randomFillSync(Buffer.allocUnsafe(mib << 20));
    const { version } = { version: (await run('openssl', ['version'])).stdout.trim() };
    const enc: number[] = [];
    const dec: number[] = [];
    const enc1: number[] = [];
    const dec1: number[] = [];
    const threads = availableParallelism();
    const sslEnc: number[] = [];
    const sslDec: number[] = [];
    const prim: number[] = [];
    const sslNoAesni: number[] = [];
    const primNoAesni: number[] = [];
    let ciphertext: Buffer[] = [];
    let outBytes = 0;
    const seconds = 1;
    for (let r = 0; r < ctx.repeats; r++) {
      ctx.log(`bulk: repeat ${r + 1}/${ctx.repeats}`);
      sslEnc.push(await opensslSpeed(false, seconds));
      prim.push(await nodeGcm(data, seconds));
      sslNoAesni.push(await opensslSpeed(false, seconds, NO_AESNI));
      primNoAesni.push(await nodeGcmMasked(mib));
      // Timed like the primitive: the output is produced and dropped (kept, 64 MiB of fresh pages would
      // be measured too); the ciphertext to decrypt comes from an untimed pass. Both thread settings run
      // in the mode the file commands use: outputs recycled (reuseOutput).
      const encRate = (t: number): Promise<number> =>
        forAbout(seconds, async () => {
          for await (const part of encryptStream(chunks(data, FRAME), kr, {
            frameSize: FRAME,
            threads: t,
            reuseOutput: true,
          })) {
            if (part.length === 0) throw new Error('empty part');
          }
          return data.length;
        });
      enc1.push(await encRate(1));
      enc.push(await encRate(threads));
      ciphertext = [];
      outBytes = 0;
      for await (const part of encryptStream(chunks(data, FRAME), kr, { frameSize: FRAME })) {
        ciphertext.push(part);
        outBytes += part.length;
      }
      sslDec.push(await opensslSpeed(true, seconds));
      const ct = Buffer.concat(ciphertext);
      ciphertext = [];
      const decRate = (t: number): Promise<number> =>
        forAbout(seconds, async () => {
          let back = 0;
          for await (const p of decryptStream(chunks(ct, FRAME), kr, '<bench>', {
            threads: t,
            reuseOutput: true,
          }))
            back += p.length;
          if (back !== data.length) throw new Error('bulk decrypt length mismatch');
          return back;
        });
      dec1.push(await decRate(1));
      dec.push(await decRate(threads));
    }
    // File to file, through the page cache and the atomic writer (disk-bound on most machines).
    const input = join(dir, 'plain.bin');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(input, data);
    const fileRates: number[] = [];
    for (let r = 0; r < Math.min(ctx.repeats, 3); r++) {
      const t0 = performance.now();
      await encryptFile(input, join(dir, 'enc.bin'), kr, { frameSize: FRAME });
      fileRates.push(data.length / 1e9 / ((performance.now() - t0) / 1000));
    }
    const fileOverhead = statSync(join(dir, 'enc.bin')).size - data.length;
    figures.push(
      {
        id: 'bulk.encrypt.bulwark_pool',
        label: `framed encryption, 1 MiB frames, ${threads} frames in flight on the libuv thread pool`,
        system: 'bulwark',
        unit: 'GB/s',
        better: 'higher',
        samples: enc,
      },
      {
        id: 'bulk.encrypt.openssl',
        label: 'framed encryption, 1 MiB frames',
        system: version,
        unit: 'GB/s',
        better: 'higher',
        samples: sslEnc,
      },
      {
        id: 'bulk.encrypt.bulwark',
        label: 'framed encryption, 1 MiB frames, one thread (the default)',
        system: 'bulwark',
        unit: 'GB/s',
        better: 'higher',
        samples: enc1,
      },
      {
        id: 'bulk.decrypt.bulwark_pool',
        label: `framed decryption, 1 MiB frames, ${threads} frames in flight on the libuv thread pool`,
        system: 'bulwark',
        unit: 'GB/s',
        better: 'higher',
        samples: dec,
      },
      {
        id: 'bulk.decrypt.bulwark',
        label: 'framed decryption, 1 MiB frames, one thread (the default)',
        system: 'bulwark',
        unit: 'GB/s',
        better: 'higher',
        samples: dec1,
      },
      {
        id: 'bulk.decrypt.openssl',
        label: 'framed decryption, 1 MiB frames',
        system: version,
        unit: 'GB/s',
        better: 'higher',
        samples: sslDec,
      },
      {
        id: 'bulk.encrypt.node_gcm',
        label: 'node:crypto AES-256-GCM alone, one call per 1 MiB',
        system: `node ${process.version} (OpenSSL ${process.versions.openssl})`,
        unit: 'GB/s',
        better: 'higher',
        samples: prim,
      },
      {
        id: 'bulk.encrypt.openssl_no_aesni',
        label: 'openssl speed with AES-NI masked (OPENSSL_ia32cap)',
        system: version,
        unit: 'GB/s',
        better: 'higher',
        samples: sslNoAesni,
      },
      {
        id: 'bulk.encrypt.node_gcm_no_aesni',
        label: 'node:crypto AES-256-GCM alone, AES-NI masked (OPENSSL_ia32cap)',
        system: `node ${process.version} (OpenSSL ${process.versions.openssl})`,
        unit: 'GB/s',
        better: 'higher',
        samples: primNoAesni,
      },
      {
        id: 'bulk.file_encrypt.bulwark',
        label: 'file to file encryption (disk, fsync)',
        system: 'bulwark',
        unit: 'GB/s',
        better: 'higher',
        samples: fileRates,
      },
      {
        id: 'bulk.size_overhead.bulwark',
        label: 'size overhead',
        system: 'bulwark',
        unit: '%',
        better: 'lower',
        samples: [(100 * (outBytes - data.length)) / data.length],
      },
    );
    facts['bulk.mib'] = mib;
    facts['bulk.frame_bytes'] = FRAME;
    facts['bulk.threads'] = threads;
    const backend = gcmBackend();
    facts['bulk.aes_gcm_backend'] = backend.backend;
    if (backend.openssl) facts['bulk.aes_gcm_openssl'] = backend.openssl;
    if (backend.reason) facts['bulk.aes_gcm_fallback_reason'] = backend.reason;
    facts['bulk.overhead_bytes'] = outBytes - data.length;
    facts['bulk.file_overhead_bytes'] = fileOverhead;
    notes.push(
      `Bulk: ${mib} MiB in memory, streamed through encryptStream/decryptStream in 1 MiB frames (header, per-frame nonces, AAD, tags and the key unwrap included), outputs recycled (reuseOutput) as the file commands do; on one thread (the default) and with ${threads} frames in flight on the libuv thread pool (os.availableParallelism(); the first 8 frames run on the calling thread). AES-256-GCM backend: ${backend.backend}${backend.openssl ? ` (${backend.openssl}, the OpenSSL node links)` : ` (${backend.reason})`}. OpenSSL's figure is one EVP AES-256-GCM call per 1 MiB buffer on one thread (openssl speed without -multi), with nothing else. Each sample, like openssl speed's, runs for about ${seconds} s (passes over the 64 MiB repeated), after a full garbage collection; runs alternate so all see the same load.`,
      `Size overhead: ${outBytes - data.length} bytes on ${mib} MiB (header + 29 bytes per frame).`,
      `The node:crypto row is node's own cipher API on one thread with nothing around it (one createCipheriv, update and final per 1 MiB): it reaches ${(100 * (median(prim) / median(sslEnc))).toFixed(0)} % of openssl speed, because each update allocates and zero-fills a fresh output (page faults for 1 MiB) around the same OpenSSL kernel. The native backend (native/aead.c) calls that kernel through EVP, writing into buffers Bulwark reuses; Bulwark on one thread / node:crypto alone = ${(median(enc1) / median(prim)).toFixed(2)}. With AES-NI masked in a child process the primitive is ${(median(prim) / median(primNoAesni)).toFixed(1)}x slower.`,
    );
    await kr.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bench: Benchmark = {
  name: 'crypto',
  description: 'field encryption vs the AWS Encryption SDK; framed file encryption vs openssl speed',
  async run(ctx) {
    const figures: Figure[] = [];
    const facts: Record<string, string | number | boolean> = { loadavg_start: loadavg()[0]!.toFixed(2) };
    const notes: string[] = [];
    await bulkBench(ctx, figures, facts, notes);
    await fieldBench(ctx, figures, facts, notes);
    facts['loadavg_end'] = loadavg()[0]!.toFixed(2);
    return {
      figures,
      facts,
      notes,
      ratios: [
        {
          label: 'field encryption, Bulwark / SDK (goal >= 20)',
          of: 'fields.encrypt.bulwark',
          to: 'fields.encrypt.sdk',
        },
        { label: 'field decryption, Bulwark / SDK', of: 'fields.decrypt.bulwark', to: 'fields.decrypt.sdk' },
        {
          label: 'bulk encryption, Bulwark on one thread / OpenSSL (goal >= 0.8)',
          of: 'bulk.encrypt.bulwark',
          to: 'bulk.encrypt.openssl',
        },
        {
          label: 'bulk decryption, Bulwark on one thread / OpenSSL (goal >= 0.8)',
          of: 'bulk.decrypt.bulwark',
          to: 'bulk.decrypt.openssl',
        },
        {
          label: 'bulk encryption, Bulwark with frames on the thread pool / OpenSSL on one thread',
          of: 'bulk.encrypt.bulwark_pool',
          to: 'bulk.encrypt.openssl',
        },
        {
          label: 'bulk decryption, Bulwark with frames on the thread pool / OpenSSL on one thread',
          of: 'bulk.decrypt.bulwark_pool',
          to: 'bulk.decrypt.openssl',
        },
        {
          label: 'bulk encryption, Bulwark on one thread / node:crypto GCM alone',
          of: 'bulk.encrypt.bulwark',
          to: 'bulk.encrypt.node_gcm',
        },
        {
          label: 'node:crypto GCM / OpenSSL with AES-NI masked',
          of: 'bulk.encrypt.node_gcm',
          to: 'bulk.encrypt.openssl_no_aesni',
        },
      ],
    };
  },
};

export default bench;
