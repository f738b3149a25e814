import { BulwarkError } from '../../core/index.js';

/**
 * Anti-replay sliding window (RFC 4303 §3.4.3, as in DTLS, RFC 6347 §4.1.2.6): accepts each sequence
 * number once, in any order within the last `size` numbers; older ones are refused as replays.
 */
export class ReplayWindow {
  readonly #size: bigint;
  #highest = -1n;
  #bitmap = 0n;

  constructor(size = 64) {
    this.#size = BigInt(size);
  }

  /** Throws `ERR_SESSION_REPLAY` if `seq` was seen or is too old; otherwise records it. */
  accept(seq: bigint, what: string): void {
    if (seq > this.#highest) {
      const shift = seq - this.#highest;
      this.#bitmap = shift >= this.#size ? 1n : ((this.#bitmap << shift) | 1n) & ((1n << this.#size) - 1n);
      this.#highest = seq;
      return;
    }
    const back = this.#highest - seq;
    if (back >= this.#size) {
      throw new BulwarkError(
        'ERR_SESSION_REPLAY',
        `attested session: ${what} ${seq} is older than the replay window`,
      );
    }
    const bit = 1n << back;
    if (this.#bitmap & bit)
      throw new BulwarkError(
        'ERR_SESSION_REPLAY',
        `attested session: ${what} ${seq} was already received (replay)`,
      );
    this.#bitmap |= bit;
  }
}
