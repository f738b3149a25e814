/**
 * A bounded LRU of verified tokens (Map insertion order as recency). Keys are SHA-256 digests of the
 * token, never the token itself, so a heap dump does not yield bearer credentials. An entry is served
 * only while `now < exp`; entries never outlive the token, and `clear()` drops everything when keys
 * rotate (a token signed by a removed key must not keep working from the cache).
 */
export class TokenCache<V extends { readonly exp: number }> {
  readonly #max: number;
  readonly #map = new Map<string, V>();

  constructor(maxEntries: number) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The entry for `key` if present and `nowSeconds < exp`; refreshes its recency. */
  get(key: string, nowSeconds: number): V | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    this.#map.delete(key);
    if (nowSeconds >= v.exp) return undefined;
    this.#map.set(key, v);
    return v;
  }

  set(key: string, value: V): void {
    if (this.#max === 0) return;
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
  }

  clear(): void {
    this.#map.clear();
  }
}
