import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  consistencyProof,
  EMPTY_ROOT,
  Frontier,
  inclusionProof,
  leafHash,
  nodeHash,
  rootAt,
  rootFromInclusionProof,
  type SubtreeSource,
  verifyConsistency,
  verifyInclusion,
} from '../../src/audit/index.js';
import { SeededRng } from '../../src/core/index.js';

// RFC 6962 / RFC 9162 reference vectors, as published in transparency-dev/merkle (testonly/constants.go
// and proof/verify_test.go): eight leaves, the root of every prefix, and known proofs.
const hex = (s: string) => Buffer.from(s, 'hex');
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(hex);
// [leaf index (0-based), tree size, proof]
const INCLUSION: [number, number, string[]][] = [
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];
// [first size, second size, proof]
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    6,
    7,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];

// --- An independent, deliberately naive reference: RFC 9162 §2.1.1-2.1.4 on lists of leaf hashes. ---
const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const largestPow2Below = (n: number) => 2 ** Math.floor(Math.log2(n - 1));
function naiveMth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0] as Buffer;
  const k = largestPow2Below(leaves.length);
  return sha(Buffer.from([1]), naiveMth(leaves.slice(0, k)), naiveMth(leaves.slice(k)));
}
function naivePath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  const k = largestPow2Below(leaves.length);
  return m < k
    ? [...naivePath(m, leaves.slice(0, k)), naiveMth(leaves.slice(k))]
    : [...naivePath(m - k, leaves.slice(k)), naiveMth(leaves.slice(0, k))];
}
function naiveSubproof(m: number, leaves: Buffer[], b: boolean): Buffer[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [naiveMth(leaves)];
  const k = largestPow2Below(n);
  return m <= k
    ? [...naiveSubproof(m, leaves.slice(0, k), b), naiveMth(leaves.slice(k))]
    : [...naiveSubproof(m - k, leaves.slice(k), false), naiveMth(leaves.slice(0, k))];
}

/** A SubtreeSource over in-memory leaf hashes. */
function memorySource(leaves: Buffer[]): SubtreeSource {
  const perfect = (level: number, index: number): Buffer =>
    level === 0
      ? (leaves[index] as Buffer)
      : nodeHash(perfect(level - 1, 2 * index), perfect(level - 1, 2 * index + 1));
  return { perfect: async (level, index) => perfect(level, index) };
}

function seededLeaves(n: number, seed = 1): Buffer[] {
  const rng = new SeededRng(seed);
  return Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i} ${rng.nextFloat()}`)));
}

describe('RFC 9162 Merkle tree: reference vectors', () => {
  const hashes = LEAVES.map((l) => leafHash(l));

  it('hashes the empty tree, leaves and every prefix root as the reference does', async () => {
    assert.deepEqual(EMPTY_ROOT, ROOTS[0]);
    for (const text of ['', 'abc', '{"caller":"Zoë 🐝"}'])
      assert.deepEqual(leafHash(text), leafHash(Buffer.from(text, 'utf8')), `string leaf ${text}`);
    assert.equal(
      hashes[0]?.toString('hex'),
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    );
    for (let n = 0; n <= 8; n++) {
      assert.deepEqual(await rootAt(memorySource(hashes), n), ROOTS[n], `root of size ${n}`);
      const f = Frontier.empty();
      for (const h of hashes.slice(0, n)) f.push(h);
      assert.deepEqual(f.root(), ROOTS[n], `frontier root of size ${n}`);
    }
  });

  it('produces and verifies the reference inclusion proofs', async () => {
    for (const [index, size, proofHex] of INCLUSION) {
      const proof = await inclusionProof(memorySource(hashes), index, size);
      assert.deepEqual(
        proof.map((p) => p.toString('hex')),
        proofHex,
        `proof of ${index} in ${size}`,
      );
      assert.ok(verifyInclusion(index, size, hashes[index] as Buffer, proof, ROOTS[size] as Buffer));
    }
  });

  it('produces and verifies the reference consistency proofs', async () => {
    for (const [m, n, proofHex] of CONSISTENCY) {
      const proof = await consistencyProof(memorySource(hashes), m, n);
      assert.deepEqual(
        proof.map((p) => p.toString('hex')),
        proofHex,
        `proof ${m} -> ${n}`,
      );
      assert.ok(verifyConsistency(m, n, ROOTS[m] as Buffer, ROOTS[n] as Buffer, proof));
    }
  });

  it('rejects corrupted inclusion proofs (wrong index, size, leaf, root, extra or missing hashes, flipped bits)', () => {
    for (const [index, size, proofHex] of INCLUSION) {
      const proof = proofHex.map(hex);
      const leaf = hashes[index] as Buffer;
      const root = ROOTS[size] as Buffer;
      const bad: [number, number, Buffer, Buffer[], Buffer, string][] = [
        [index + 1, size, leaf, proof, root, 'index + 1'],
        [index ^ 2, size, leaf, proof, root, 'index ^ 2'],
        [index, size * 2, leaf, proof, root, 'size * 2'],
        [index, Math.floor(size / 2), leaf, proof, root, 'size / 2'],
        [index, size, leafHash(Buffer.from('WrongLeaf')), proof, root, 'wrong leaf'],
        [index, size, leaf, proof, EMPTY_ROOT, 'empty root'],
        [index, size, leaf, [...proof, root], root, 'trailing root'],
        [index, size, leaf, [root, ...proof], root, 'preceding root'],
        [index, size, leaf, proof.slice(0, -1), root, 'removed component'],
        ...proof.map((_, i): [number, number, Buffer, Buffer[], Buffer, string] => {
          const p = proof.map((x) => Buffer.from(x));
          const b = p[i] as Buffer;
          b[0] = (b[0] as number) ^ 8;
          return [index, size, leaf, p, root, `flipped bit in proof[${i}]`];
        }),
      ];
      if (index > 0) bad.push([index - 1, size, leaf, proof, root, 'index - 1']);
      for (const [i, s, l, p, r, what] of bad)
        assert.equal(
          verifyInclusion(i, s, l, p, r),
          false,
          `${what} (leaf ${index}, size ${size}) must fail`,
        );
    }
  });

  it('rejects corrupted consistency proofs and handles the trivial sizes like the reference', () => {
    for (const [m, n, proofHex] of CONSISTENCY.filter(([, , p]) => p.length > 0)) {
      const proof = proofHex.map(hex);
      const r1 = ROOTS[m] as Buffer;
      const r2 = ROOTS[n] as Buffer;
      const bad: [number, number, Buffer, Buffer, Buffer[], string][] = [
        [m - 1, n, r1, r2, proof, 'first - 1'],
        [m + 1, n, r1, r2, proof, 'first + 1'],
        [m ^ 2, n, r1, r2, proof, 'first ^ 2'],
        [m, n * 2, r1, r2, proof, 'second * 2'],
        [m, Math.floor(n / 2), r1, r2, proof, 'second / 2'],
        [m, n, EMPTY_ROOT, r2, proof, 'wrong root1'],
        [m, n, r1, EMPTY_ROOT, proof, 'wrong root2'],
        [m, n, r2, r1, proof, 'swapped roots'],
        [m, n, r1, r2, [], 'empty proof'],
        [m, n, r1, r2, [...proof, r1], 'trailing root1'],
        [m, n, r1, r2, [r2, ...proof], 'preceding root2'],
        [m, n, r1, r2, proof.slice(0, -1), 'truncated'],
        ...proof.map((_, i): [number, number, Buffer, Buffer, Buffer[], string] => {
          const p = proof.map((x) => Buffer.from(x));
          const b = p[i] as Buffer;
          b[0] = (b[0] as number) ^ 16;
          return [m, n, r1, r2, p, `flipped bit in proof[${i}]`];
        }),
      ];
      for (const [a, b, x, y, p, what] of bad)
        assert.equal(verifyConsistency(a, b, x, y, p), false, `${what} (${m} -> ${n}) must fail`);
    }
    const someRoot = ROOTS[3] as Buffer;
    assert.ok(verifyConsistency(0, 0, someRoot, someRoot, []));
    assert.ok(verifyConsistency(0, 5, someRoot, EMPTY_ROOT, []));
    assert.ok(verifyConsistency(4, 4, someRoot, someRoot, []));
    assert.equal(verifyConsistency(4, 4, someRoot, EMPTY_ROOT, []), false);
    assert.equal(verifyConsistency(4, 4, someRoot, someRoot, [EMPTY_ROOT]), false);
    assert.equal(verifyConsistency(0, 1, someRoot, someRoot, [EMPTY_ROOT]), false);
    assert.equal(verifyConsistency(2, 1, someRoot, someRoot, []), false);
    assert.equal(verifyConsistency(1, 2, someRoot, someRoot, []), false);
  });
});

describe('RFC 9162 Merkle tree: against a naive implementation', () => {
  const leaves = seededLeaves(65, 7);

  it('roots, inclusion proofs for every index and consistency proofs for every pair agree, sizes 0..65', async () => {
    const src = memorySource(leaves);
    for (let n = 0; n <= 65; n++) {
      const prefix = leaves.slice(0, n);
      const root = naiveMth(prefix);
      assert.deepEqual(await rootAt(src, n), root, `root of ${n}`);
      for (let m = 0; m < n; m++) {
        const proof = await inclusionProof(src, m, n);
        assert.deepEqual(proof, naivePath(m, prefix), `PATH(${m}, D[${n}])`);
        assert.ok(verifyInclusion(m, n, leaves[m] as Buffer, proof, root), `inclusion of ${m} in ${n}`);
        assert.deepEqual(rootFromInclusionProof(m, n, leaves[m] as Buffer, proof), root);
        // The same proof must not verify for a neighbouring leaf or another tree size.
        if (n > 1) assert.equal(verifyInclusion((m + 1) % n, n, leaves[m] as Buffer, proof, root), false);
      }
      for (let m = 0; m <= n; m++) {
        const proof = await consistencyProof(src, m, n);
        const expected = m === 0 || m === n ? [] : naiveSubproof(m, prefix, true);
        assert.deepEqual(proof, expected, `PROOF(${m}, D[${n}])`);
        assert.ok(
          verifyConsistency(m, n, naiveMth(leaves.slice(0, m)), root, proof),
          `consistency ${m} -> ${n}`,
        );
        if (m > 0 && m < n)
          assert.equal(verifyConsistency(m, n, naiveMth(leaves.slice(0, m - 1)), root, proof), false);
      }
    }
  });

  it('proof sizes grow as ceil(log2 n)', async () => {
    const big = seededLeaves(1 << 10, 3);
    const src = memorySource(big);
    assert.equal((await inclusionProof(src, 0, 1024)).length, 10);
    assert.equal((await inclusionProof(src, 1023, 1024)).length, 10);
    await assert.rejects(inclusionProof(src, 1000, 1000), RangeError);
    assert.ok((await inclusionProof(src, 999, 1000)).length <= 10);
    assert.equal((await inclusionProof(src, 0, 1)).length, 0);
  });

  it('Frontier: encode/decode round-trips, reports every completed subtree, rejects a wrong length', () => {
    const f = Frontier.empty();
    const nodes: { level: number; index: number; hash: Buffer }[] = [];
    for (const h of leaves.slice(0, 40)) f.push(h, (n) => nodes.push(n));
    const g = Frontier.decode(40, f.encode());
    assert.deepEqual(g.root(), naiveMth(leaves.slice(0, 40)));
    g.push(leaves[40] as Buffer);
    assert.deepEqual(g.root(), naiveMth(leaves.slice(0, 41)));
    // 40 leaves complete 20 + 10 + 5 + 2 + 1 subtrees of heights 1..5.
    assert.equal(nodes.length, 38);
    for (const n of nodes)
      assert.deepEqual(n.hash, naiveMth(leaves.slice(n.index * 2 ** n.level, (n.index + 1) * 2 ** n.level)));
    assert.throws(() => Frontier.decode(40, Buffer.alloc(32)), RangeError);
  });
});
