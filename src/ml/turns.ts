import { setImmediate as nextTurn } from 'node:timers/promises';

/** Default longest stretch of synchronous work between two turns of the event loop (ms). */
export const TURN_INTERVAL_MS = 50;

/**
 * Gives the event loop a turn now and then during a long synchronous computation (a training epoch, a
 * full-batch solver), so that what waits on it runs: above all the CLI's SIGINT/SIGTERM handlers
 * (src/cli/signals.ts), which Node runs only from the event loop. A loop that never awaits ignores
 * Ctrl-C until it ends (an L-BFGS fit or one MLP epoch on a large file: tens of seconds).
 *
 * Time-based, not count-based, because the cost of one step varies by orders of magnitude (a batch of
 * a logistic regression vs. an MLP's): `due()` is one clock read; a turn (`setImmediate`) costs a few
 * microseconds, taken at most once per `intervalMs`. The computation is the same whatever the timing,
 * so results stay deterministic.
 */
export class EventLoopTurns {
  #last = performance.now();
  constructor(readonly intervalMs = TURN_INTERVAL_MS) {}

  /** Whether a turn is due. */
  due(): boolean {
    return performance.now() - this.#last >= this.intervalMs;
  }

  /**
   * Gives the event loop a full turn now. Two `setImmediate`s: a signal is read in the loop's poll
   * phase, and one immediate scheduled from the poll phase (where a read or a timer's continuation
   * runs) fires in the check phase of the same iteration, without passing through poll; the second one
   * then fires in the next iteration, after its poll phase.
   */
  async turn(): Promise<void> {
    await nextTurn();
    await nextTurn();
    this.#last = performance.now();
  }
}

/**
 * A computation written once as a generator of steps (it yields between batches, streams, classes or
 * phases; what it yields is ignored) runs synchronously with {@link runSteps} or, giving the event
 * loop a turn between steps when one is due, with {@link runStepsAsync}: the same work in the same
 * order either way, so both return the same result.
 */
export type Steps<T> = Generator<unknown, T, undefined>;

/** Runs `steps` to the end without a turn of the event loop. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs `steps` to the end, giving the event loop a turn between two steps at most every interval. */
export async function runStepsAsync<T>(steps: Steps<T>, turns = new EventLoopTurns()): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (turns.due()) await turns.turn();
  }
}
