/**
 * Subtree hashes read from a store: cached nodes for heights >= NODE_CACHE_LEVEL, and for lower
 * heights the hashes computed from one block of 2^NODE_CACHE_LEVEL leaf hashes (fetched once per
 * block per operation).
 */
import { BulwarkError } from '../core/index.js';
import { nodeHash, type SubtreeSource } from './merkle.js';
import { type AuditStore, NODE_CACHE_LEVEL } from './store.js';

const BLOCK = 2 ** NODE_CACHE_LEVEL;

/** The root of the perfect subtree over `leaves[lo, lo + 2^level)`. */
export function perfectFromLeaves(leaves: readonly Buffer[], lo: number, level: number): Buffer {
  if (level === 0) {
    const l = leaves[lo];
    if (!l) throw new RangeError(`leaf ${lo} missing`);
    return l;
  }
  const half = 2 ** (level - 1);
  return nodeHash(perfectFromLeaves(leaves, lo, level - 1), perfectFromLeaves(leaves, lo + half, level - 1));
}

/** A {@link SubtreeSource} over a store's tree of `size` leaves. */
export class StoreTree implements SubtreeSource {
  private readonly blocks = new Map<number, Promise<Buffer[]>>();

  constructor(
    private readonly store: AuditStore,
    readonly size: number,
  ) {}

  private block(b: number): Promise<Buffer[]> {
    let p = this.blocks.get(b);
    if (!p) {
      p = this.store.leafHashes(b * BLOCK, Math.min((b + 1) * BLOCK, this.size));
      this.blocks.set(b, p);
    }
    return p;
  }

  async perfect(level: number, index: number): Promise<Buffer> {
    const start = index * 2 ** level;
    if (start + 2 ** level > this.size)
      throw new RangeError(`subtree (${level}, ${index}) is beyond size ${this.size}`);
    if (level >= NODE_CACHE_LEVEL) {
      const rows = await this.store.nodes(level, index, index + 1);
      const h = rows[0]?.hash;
      if (!h)
        throw new BulwarkError(
          'ERR_AUDIT_STORE_INVALID',
          `${this.store.location}: cached subtree hash (level ${level}, index ${index}) is missing`,
        );
      return h;
    }
    const b = Math.floor(start / BLOCK);
    const leaves = await this.block(b);
    const offset = start - b * BLOCK;
    if (leaves.length < offset + 2 ** level)
      throw new BulwarkError(
        'ERR_AUDIT_ENTRY_MISSING',
        `${this.store.location}: entries ${start}..${start + 2 ** level - 1} are not all present`,
      );
    return perfectFromLeaves(leaves, offset, level);
  }
}
