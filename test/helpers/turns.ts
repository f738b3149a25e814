import { TURN_INTERVAL_MS } from '../../src/ml/index.js';

/**
 * Tells whether a long synchronous computation gives the event loop a turn: `block()`, called from its
 * progress callback, queues an immediate and then stays busy for longer than the computation's interval
 * between turns (as a long step would); `ran` says whether the immediate has run since, i.e. whether the
 * computation yielded before its next progress call. No time is measured or asserted: the busy wait
 * only guarantees that a turn is due.
 */
export function eventLoopProbe(): { block(): void; readonly ran: boolean } {
  let ran = false;
  return {
    block() {
      ran = false;
      setImmediate(() => {
        ran = true;
      });
      const start = performance.now();
      while (performance.now() - start < TURN_INTERVAL_MS + 20) {
        // busy, as a long batch or iteration would be
      }
    },
    get ran() {
      return ran;
    },
  };
}
