/**
 * Model package benchmark (issue #7): protect (ONNX file → signed, encrypted .bwm) and load (read,
 * verify signature and digests, decrypt in memory, check the model digest, ONNX Runtime session from
 * the buffer) for models of 1 MB, 100 MB and 1 GB, against the plain load of the same ONNX file
 * (read the file + ONNX Runtime session from the buffer), runs alternating so both see the same load.
 * Goals: size overhead under 0.01 %; loading a 1 GB package within 1.5x the plain load.
 *
 * The package load decrypts on the calling thread (the default, `decryptThreads: 1`); the same load with
 * frames on the libuv thread pool (`decryptThreads: os.availableParallelism()`) runs in the same
 * rounds, so both are on record.
 *
 * The models are generated: one MatMul of a [1, 256] input by a [256, k] float32 initializer, k chosen
 * for the size, written as ONNX protobuf by hand (the weights never go through a protobuf library).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SeededRng } from '../src/core/index.js';
import { Keyring } from '../src/keys/index.js';
import { OnnxRuntimeModel } from '../src/ml/index.js';
import {
  generateSigningKey,
  loadProtectedModel,
  protectModel,
  publicKeyPem,
  trustPolicyFrom,
  verifyPackage,
} from '../src/model/index.js';
import { type Benchmark, type Figure, median } from './harness.js';

const IN = 256;

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}
const key = (no: number, wt: number): Buffer => varint(no * 8 + wt);
const lenField = (no: number, ...parts: Buffer[]): Buffer => {
  const len = parts.reduce((a, p) => a + p.length, 0);
  return Buffer.concat([key(no, 2), varint(len), ...parts]);
};
const intField = (no: number, v: number): Buffer => Buffer.concat([key(no, 0), varint(v)]);
const strField = (no: number, s: string): Buffer => lenField(no, Buffer.from(s, 'utf8'));

function valueInfo(name: string, dims: number[]): Buffer {
  const shape = lenField(2, ...dims.map((d) => lenField(1, intField(1, d))));
  return Buffer.concat([strField(1, name), lenField(2, lenField(1, intField(1, 1), shape))]);
}

/** Writes an ONNX model of about `bytes` bytes (MatMul by a [256, k] initializer) to `path`. */
async function writeModel(path: string, bytes: number): Promise<number> {
  const k = Math.max(1, Math.floor(bytes / 4 / IN));
  const rawLen = IN * k * 4;
  const node = lenField(1, strField(1, 'x'), strField(1, 'W'), strField(2, 'y'), strField(4, 'MatMul'));
  const initHead = Buffer.concat([intField(1, IN), intField(1, k), intField(2, 1), strField(8, 'W')]);
  const rawKey = Buffer.concat([key(9, 2), varint(rawLen)]);
  const initLen = initHead.length + rawKey.length + rawLen;
  const graphTail = Buffer.concat([
    lenField(11, valueInfo('x', [1, IN])),
    lenField(12, valueInfo('y', [1, k])),
  ]);
  const graphHead = Buffer.concat([node, strField(2, 'g')]);
  const initPrefix = Buffer.concat([key(5, 2), varint(initLen)]);
  const graphLen = graphHead.length + initPrefix.length + initLen + graphTail.length;
  const head = Buffer.concat([
    intField(1, 8),
    strField(2, 'bulwark-bench'),
    lenField(8, strField(1, ''), intField(2, 17)),
    key(7, 2),
    varint(graphLen),
    graphHead,
    initPrefix,
    initHead,
    rawKey,
  ]);
  // Weights: a 1 MiB block of N(0, 0.05) floats repeated (valid numbers; content does not matter).
  const rng = new SeededRng(7);
  const block = new Float32Array(1 << 18);
  for (let i = 0; i < block.length; i++) block[i] = rng.normal() * 0.05;
  const blockBytes = Buffer.from(block.buffer);
  const fh = await open(path, 'w');
  try {
    await fh.write(head);
    let left = rawLen;
    while (left > 0) {
      const n = Math.min(left, blockBytes.length);
      await fh.write(blockBytes, 0, n);
      left -= n;
    }
    await fh.write(graphTail);
  } finally {
    await fh.close();
  }
  return statSync(path).size;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

const SIZES: { label: string; bytes: number; id: string }[] = [
  { label: '1 MB', bytes: 1 << 20, id: '1mb' },
  { label: '100 MB', bytes: 100 << 20, id: '100mb' },
  { label: '1 GB', bytes: 1 << 30, id: '1gb' },
];

const bench: Benchmark = {
  name: 'model-package',
  description: 'protect and load (verify + decrypt + ONNX Runtime session) vs plain read + session',
  async run(ctx) {
    const figures: Figure[] = [];
    const notes: string[] = [];
    const threads = availableParallelism();
    const facts: Record<string, string | number | boolean> = {
      loadavg_start: loadavg()[0]!.toFixed(2),
      decrypt_threads: threads,
    };
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-model-'));
    process.env['BULWARK_BENCH_PASS'] = randomBytes(16).toString('hex');
    const kr = await Keyring.create(join(dir, 'kr.json'), { secret: { env: 'BULWARK_BENCH_PASS' } });
    await kr.createKey('data');
    const signer = generateSigningKey();
    const trust = await trustPolicyFrom({
      version: 1,
      signers: [{ name: 'bench', publicKey: publicKeyPem(signer.publicKey), models: ['bench-*'] }],
    });
    try {
      const sizes = ctx.quick ? SIZES.slice(0, 2) : SIZES;
      for (const s of sizes) {
        const onnxPath = join(dir, `m-${s.id}.onnx`);
        const pkgPath = join(dir, `m-${s.id}.bwm`);
        ctx.log(`${s.label}: generating the ONNX model`);
        const onnxBytes = await writeModel(onnxPath, s.bytes);
        const mb = onnxBytes / 1e6;
        const repeats = ctx.repeats;
        const protect: number[] = [];
        const load: number[] = [];
        const loadNoDigest: number[] = [];
        const load1: number[] = [];
        const load1Cpu: number[] = [];
        // CPU seconds of the process (all threads: main, libuv thread pool, ONNX Runtime): the work
        // done, much less sensitive than wall time to other processes on a shared machine.
        const plainCpu: number[] = [];
        const loadCpu: number[] = [];
        const loadNoDigestCpu: number[] = [];
        const plain: number[] = [];
        const plainRead: number[] = [];
        const verifyDecrypt: number[] = [];
        let pkgBytes = 0;
        for (let r = 0; r < repeats; r++) {
          ctx.log(`${s.label}: round ${r + 1}/${repeats}`);
          rmSync(pkgPath, { force: true });
          let t0 = performance.now();
          const res = await protectModel(onnxPath, pkgPath, {
            keyring: kr,
            signingKey: signer,
            name: `bench-${s.id}`,
            version: '1',
          });
          protect.push((performance.now() - t0) / 1000);
          pkgBytes = res.packageBytes;
          const runPlain = async (): Promise<void> => {
            const c0 = process.cpuUsage();
            const t1 = performance.now();
            const bytes = await readFile(onnxPath);
            const t2 = performance.now();
            const m = await OnnxRuntimeModel.create(bytes);
            plain.push((performance.now() - t1) / 1000);
            plainCpu.push(cpuSeconds(c0));
            plainRead.push((t2 - t1) / 1000);
            await m.close();
          };
          const runPackage = async (): Promise<void> => {
            const c0 = process.cpuUsage();
            t0 = performance.now();
            const l = await loadProtectedModel(pkgPath, { keyring: kr, trust });
            load.push((performance.now() - t0) / 1000);
            loadCpu.push(cpuSeconds(c0));
            await l.model.close();
          };
          const runPackageNoDigest = async (): Promise<void> => {
            const c0 = process.cpuUsage();
            t0 = performance.now();
            const l = await loadProtectedModel(pkgPath, { keyring: kr, trust, checkModelDigest: false });
            loadNoDigest.push((performance.now() - t0) / 1000);
            loadNoDigestCpu.push(cpuSeconds(c0));
            await l.model.close();
          };
          const runPackagePool = async (): Promise<void> => {
            const c0 = process.cpuUsage();
            t0 = performance.now();
            const l = await loadProtectedModel(pkgPath, { keyring: kr, trust, decryptThreads: threads });
            load1.push((performance.now() - t0) / 1000);
            load1Cpu.push(cpuSeconds(c0));
            await l.model.close();
          };
          // Rotate the order each round, so no variant always runs first (warmer cache, other load).
          const order = [runPlain, runPackage, runPackageNoDigest, runPackagePool];
          for (let k = 0; k < order.length; k++) await order[(k + r) % order.length]!();
          t0 = performance.now();
          await verifyPackage(pkgPath, { trust, keyring: kr });
          verifyDecrypt.push((performance.now() - t0) / 1000);
          if (global.gc) global.gc();
        }
        const overhead = (pkgBytes - onnxBytes) / onnxBytes;
        // Each round runs the loads back to back: a ratio within a round sees one machine load.
        const overPlain = (xs: number[]) => xs.map((x, i) => x / plain[i]!);
        facts[`${s.id}.onnx_bytes`] = onnxBytes;
        facts[`${s.id}.package_bytes`] = pkgBytes;
        facts[`${s.id}.overhead_bytes`] = pkgBytes - onnxBytes;
        facts[`${s.id}.overhead_percent`] = Number((overhead * 100).toFixed(5));
        facts[`${s.id}.load_over_plain_medians`] = Number((median(load) / median(plain)).toFixed(3));
        facts[`${s.id}.load_nodigest_over_plain_paired_median`] = Number(
          median(overPlain(loadNoDigest)).toFixed(3),
        );
        facts[`${s.id}.load_over_plain_paired_median`] = Number(median(overPlain(load)).toFixed(3));
        facts[`${s.id}.load_pool_over_plain_medians`] = Number((median(load1) / median(plain)).toFixed(3));
        const f = (id: string, label: string, unit: string, better: 'higher' | 'lower', samples: number[]) =>
          figures.push({
            id: `${s.id}.${id}`,
            label: `${s.label}: ${label}`,
            system: id.startsWith('plain') ? 'plain ONNX' : 'bulwark',
            unit,
            better,
            samples,
          });
        f('protect', 'protect (read, hash, encrypt, sign, write + fsync)', 's', 'lower', protect);
        f(
          'protect_mbps',
          'protect throughput',
          'MB/s',
          'higher',
          protect.map((x) => mb / x),
        );
        f(
          'load',
          'load package (read + verify + decrypt on the calling thread, the default + session)',
          's',
          'lower',
          load,
        );
        f('load_pool', `load package, ${threads} frames in flight on the thread pool`, 's', 'lower', load1);
        f('plain_load', 'plain load (read + session)', 's', 'lower', plain);
        f('plain_read', 'plain file read alone', 's', 'lower', plainRead);
        f('verify_decrypt', 'verify + decrypt + model digest, no session', 's', 'lower', verifyDecrypt);
        f(
          'load_mbps',
          'load throughput (package)',
          'MB/s',
          'higher',
          load.map((x) => mb / x),
        );
        f(
          'load_nodigest',
          'load package without the redundant plaintext digest check',
          's',
          'lower',
          loadNoDigest,
        );
        f('plain_cpu', 'plain load, CPU time of the process', 'CPU s', 'lower', plainCpu);
        f('load_cpu', 'package load, CPU time of the process', 'CPU s', 'lower', loadCpu);
        f('load_pool_cpu', 'package load, frames on the thread pool, CPU time', 'CPU s', 'lower', load1Cpu);
        f(
          'load_nodigest_cpu',
          'package load without plaintext digest, CPU time',
          'CPU s',
          'lower',
          loadNoDigestCpu,
        );
        f('paired_ratio', 'package load / plain load, same round', 'x', 'lower', overPlain(load));
        f(
          'paired_ratio_pool',
          'package load, frames on the thread pool / plain load, same round',
          'x',
          'lower',
          overPlain(load1),
        );
        f(
          'paired_ratio_nodigest',
          'package load without plaintext digest / plain load, same round',
          'x',
          'lower',
          overPlain(loadNoDigest),
        );
        rmSync(onnxPath, { force: true });
        rmSync(pkgPath, { force: true });
      }
      facts['loadavg_end'] = loadavg()[0]!.toFixed(2);
      notes.push(
        `Plain load = readFile of the ONNX + OnnxRuntimeModel.create(bytes) (1 intra-op thread, graph optimisation "all"); package load = loadProtectedModel: one read of the .bwm with SHA-256 of the body and file overlapped with the reads, signature check (ECDSA P-256), manifest and body digests, unwrap of the data key (local keyring), decryption of 1 MiB frames into one buffer on the calling thread (the default; the "thread pool" rows keep ${threads} frames in flight on the libuv thread pool after the first 8), SHA-256 of the plaintext against the signed digest (on the calling thread, in frame order; the "without" rows skip this redundant check with checkModelDigest: false), the same session creation, then the plaintext is overwritten. Both read from the page cache (the files were just written).`,
        'Size overhead = package bytes - ONNX bytes: 32 bytes of framing, the manifest (no preprocessing for these generated models), the Sigstore bundle (~1.4 KB) and the encrypted stream (header ~430 bytes + 29 bytes per 1 MiB frame).',
      );
      return {
        figures,
        facts,
        notes,
        ratios: sizes.flatMap((s) => [
          {
            label: `${s.label}: package load / plain load${s.id === '1gb' ? ' (goal <= 1.5)' : ''}`,
            of: `${s.id}.load`,
            to: `${s.id}.plain_load`,
          },
          {
            label: `${s.label}: package load, frames on the thread pool / plain load`,
            of: `${s.id}.load_pool`,
            to: `${s.id}.plain_load`,
          },
          {
            label: `${s.label}: package load without the plaintext digest / plain load`,
            of: `${s.id}.load_nodigest`,
            to: `${s.id}.plain_load`,
          },
          {
            label: `${s.label}: package load / plain load, CPU time`,
            of: `${s.id}.load_cpu`,
            to: `${s.id}.plain_cpu`,
          },
          {
            label: `${s.label}: package load without the plaintext digest / plain load, CPU time`,
            of: `${s.id}.load_nodigest_cpu`,
            to: `${s.id}.plain_cpu`,
          },
        ]),
      };
    } finally {
      await kr.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default bench;
