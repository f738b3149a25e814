/**
 * RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and proof verification.
 *
 * - Hashes (§2.1.1): `MTH({}) = SHA-256()`, leaf `SHA-256(0x00 || d)`, node `SHA-256(0x01 || l || r)`;
 *   the prefixes keep a leaf from ever being read as a node (second-preimage resistance).
 * - Proof generation follows the RFC's recursive definitions `PATH(m, D[n])` (§2.1.3.1) and
 *   `SUBPROOF(m, D[n], b)` (§2.1.4.1), evaluated on stored subtree hashes through a
 *   {@link SubtreeSource} rather than on the leaves, so a proof costs O(log n) hash look-ups.
 * - Proof verification follows the RFC's iterative algorithms (§2.1.3.2, §2.1.4.2) literally: it is a
 *   separate code path from generation, so tests that check one with the other are meaningful.
 *
 * Tree sizes and indices are plain numbers (safe integers, up to 2^53 - 1); bit operations are done
 * arithmetically because JavaScript's `>>` truncates to 32 bits.
 */
import { createHash, hash } from 'node:crypto';

/** Bytes of a SHA-256 hash. */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** `MTH({})`: the hash of the empty tree, SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/** RFC 9162 §2.1.1 leaf hash: `SHA-256(0x00 || data)` (a string is hashed as its UTF-8 bytes). */
export function leafHash(data: Uint8Array | string): Buffer {
  // One-shot hashing of a string avoids a Hash object per entry (appends and verification hash
  // every entry); U+0000 encodes as the single byte 0x00.
  if (typeof data === 'string') return hash('sha256', `\u0000${data}`, 'buffer') as unknown as Buffer;
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

/** RFC 9162 §2.1.1 interior node hash: `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length === HASH_SIZE && right.length === HASH_SIZE) {
    // One-shot over a 65-byte buffer: cheaper than a Hash object on the append and verify paths.
    const buf = Buffer.allocUnsafe(1 + 2 * HASH_SIZE);
    buf[0] = 0x01;
    buf.set(left, 1);
    buf.set(right, 1 + HASH_SIZE);
    return hash('sha256', buf, 'buffer') as unknown as Buffer;
  }
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two strictly less than `n` (n >= 2): the RFC's split point `k`. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n)) && 2 ** Math.log2(n) === n;
}

const lsb = (x: number): number => x % 2;
const shr = (x: number): number => Math.floor(x / 2);

/**
 * Where hashes of perfect (complete) subtrees come from: `perfect(level, index)` is the root of the
 * subtree over leaves `[index * 2^level, (index + 1) * 2^level)`. The stores keep leaf hashes and a
 * cache of the higher levels; tests use an in-memory list of leaves.
 */
export interface SubtreeSource {
  perfect(level: number, index: number): Promise<Buffer>;
}

/**
 * `MTH(D[lo:hi])` for a range that occurs in the RFC recursion. Every left part in that recursion is
 * an aligned perfect subtree (its size is a power of two that divides its start), so the range
 * decomposes into at most log2(n) perfect subtrees joined along the right edge.
 */
export async function rangeHash(src: SubtreeSource, lo: number, hi: number): Promise<Buffer> {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (isPowerOfTwo(n) && lo % n === 0) {
    const level = Math.log2(n);
    return src.perfect(level, lo / n);
  }
  const k = splitPoint(n);
  return nodeHash(await rangeHash(src, lo, lo + k), await rangeHash(src, lo + k, hi));
}

/** The root hash of the tree of the first `size` leaves. */
export function rootAt(src: SubtreeSource, size: number): Promise<Buffer> {
  return rangeHash(src, 0, size);
}

/**
 * RFC 9162 §2.1.3.1 `PATH(m, D[n])`: the inclusion proof of leaf `index` in the tree of `size` leaves,
 * from the leaf's sibling up to the root's child.
 */
export async function inclusionProof(src: SubtreeSource, index: number, size: number): Promise<Buffer[]> {
  if (!(index >= 0 && index < size))
    throw new RangeError(`leaf index ${index} is not below tree size ${size}`);
  const path: Buffer[] = [];
  // PATH(m, D[lo:hi]) = PATH(m, D[lo:lo+k]) : MTH(D[lo+k:hi]) when m < k, else
  // PATH(m - k, D[lo+k:hi]) : MTH(D[lo:lo+k]). The recursion is unrolled; siblings are collected
  // root-side first and reversed at the end.
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      path.push(await rangeHash(src, lo + k, hi));
      hi = lo + k;
    } else {
      path.push(await rangeHash(src, lo, lo + k));
      lo = lo + k;
    }
  }
  return path.reverse();
}

/**
 * RFC 9162 §2.1.4.1 `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`: the consistency proof between the
 * trees of `first` and `second` leaves. Empty when `first` is 0 or equal to `second`.
 */
export async function consistencyProof(src: SubtreeSource, first: number, second: number): Promise<Buffer[]> {
  if (!(first >= 0 && first <= second))
    throw new RangeError(`consistency proof needs 0 <= first <= second, got ${first} and ${second}`);
  if (first === 0 || first === second) return [];
  const out: Buffer[] = [];
  // SUBPROOF(m, D[lo:hi], b), unrolled: right-side hashes are appended after the recursion's result,
  // so they are collected here and reversed.
  let m = first;
  let lo = 0;
  let hi = second;
  let b = true;
  for (;;) {
    const n = hi - lo;
    if (m === n) {
      if (!b) out.push(await rangeHash(src, lo, hi));
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      out.push(await rangeHash(src, lo + k, hi));
      hi = lo + k;
    } else {
      out.push(await rangeHash(src, lo, lo + k));
      m -= k;
      lo += k;
      b = false;
    }
  }
  // The element pushed last (the innermost SUBPROOF result) comes first in the proof.
  return out.reverse();
}

/**
 * RFC 9162 §2.1.3.2: the root implied by an inclusion proof, or `null` when the proof has the wrong
 * shape for `index` and `size` (too short, too long, index out of range).
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Buffer | null {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return null;
  if (leaf.length !== HASH_SIZE || proof.some((p) => p.length !== HASH_SIZE)) return null;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return null;
    if (lsb(fn) === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (lsb(fn) === 0) {
        while (lsb(fn) === 0 && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = shr(fn);
    sn = shr(sn);
  }
  return sn === 0 ? r : null;
}

/** RFC 9162 §2.1.3.2: whether `proof` shows leaf hash `leaf` at `index` in the tree with root `root`. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  const r = rootFromInclusionProof(index, size, leaf, proof);
  return r !== null && root.length === HASH_SIZE && r.equals(root);
}

/**
 * RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `first` leaves with root `firstRoot` is a
 * prefix of the tree of `second` leaves with root `secondRoot`. The trivial cases (the RFC requires
 * 0 < first < second for a proof) are handled as transparency-dev/merkle does: `first == second`
 * needs an empty proof and equal roots; `first == 0` needs an empty proof.
 */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first >= 0 && first <= second))
    return false;
  if (proof.some((p) => p.length !== HASH_SIZE)) return false;
  if (first === second) return proof.length === 0 && Buffer.from(firstRoot).equals(secondRoot);
  if (first === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (lsb(fn) === 1) {
    fn = shr(fn);
    sn = shr(sn);
  }
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = Buffer.from(path[0] as Uint8Array);
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (lsb(fn) === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (lsb(fn) === 0) {
        while (lsb(fn) === 0 && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = shr(fn);
    sn = shr(sn);
  }
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
}

/** A perfect subtree completed by an append: its level, its index on that level, its hash. */
export interface CompletedNode {
  level: number;
  index: number;
  hash: Buffer;
}

/**
 * The right edge of the tree (a "compact range" over `[0, size)`): the roots of the perfect subtrees
 * that the binary digits of `size` split the leaves into, largest first. Appending a leaf merges equal
 * subtrees like a binary counter; the root is the right-to-left fold of the edge, which is exactly
 * the RFC's MTH because each RFC split puts the largest power of two on the left.
 *
 * O(log n) state: the stores keep it with the tree size so an append never reads old leaves.
 */
export class Frontier {
  private constructor(
    private sizeValue: number,
    private readonly hashes: Buffer[],
  ) {}

  static empty(): Frontier {
    return new Frontier(0, []);
  }

  /** Rebuilds a frontier from its serialised form (see {@link Frontier.encode}). */
  static decode(size: number, bytes: Uint8Array): Frontier {
    const expected = popcount(size);
    if (bytes.length !== expected * HASH_SIZE)
      throw new RangeError(`frontier of a ${size}-leaf tree must have ${expected} hashes`);
    const hashes: Buffer[] = [];
    for (let i = 0; i < expected; i++)
      hashes.push(Buffer.from(bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)));
    return new Frontier(size, hashes);
  }

  get size(): number {
    return this.sizeValue;
  }

  /** The concatenated edge hashes, largest subtree first. */
  encode(): Buffer {
    return Buffer.concat(this.hashes);
  }

  /**
   * Appends one leaf hash; calls `onNode` for every perfect subtree of height >= 1 the append
   * completes (the stores cache the higher ones).
   */
  push(leaf: Buffer, onNode?: (node: CompletedNode) => void): void {
    let h = leaf;
    let level = 0;
    const newSize = this.sizeValue + 1;
    // Each trailing 1 bit of the old size is a subtree of that height to merge with.
    let s = this.sizeValue;
    while (lsb(s) === 1) {
      const left = this.hashes.pop() as Buffer;
      h = nodeHash(left, h);
      level++;
      onNode?.({ level, index: Math.floor(newSize / 2 ** level) - 1, hash: h });
      s = shr(s);
    }
    this.hashes.push(h);
    this.sizeValue = newSize;
  }

  /** MTH of the leaves pushed so far. */
  root(): Buffer {
    if (this.hashes.length === 0) return EMPTY_ROOT;
    let r = this.hashes[this.hashes.length - 1] as Buffer;
    for (let i = this.hashes.length - 2; i >= 0; i--) r = nodeHash(this.hashes[i] as Buffer, r);
    return r;
  }

  clone(): Frontier {
    return new Frontier(this.sizeValue, [...this.hashes]);
  }
}

function popcount(n: number): number {
  let c = 0;
  let x = n;
  while (x > 0) {
    c += lsb(x);
    x = shr(x);
  }
  return c;
}
