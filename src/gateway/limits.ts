/**
 * Rate limit and query budget per principal and model (`rate-limiter-flexible`): in memory for one
 * replica, in Redis (ioredis) when several replicas must share the counts. A rate limit caps request
 * bursts; the query budget caps the rows a caller may have answered per window, which bounds how much
 * of the model an extraction attack can learn (Tramèr et al. 2016; PRADA, Juuti et al. 2019).
 *
 * Fail closed: when Redis cannot be reached the limiter answers ERR_GATEWAY_LIMITER_UNAVAILABLE (503)
 * at once (no offline queue, `rejectIfRedisNotReady`) instead of letting the request through; ioredis
 * keeps reconnecting, so service resumes by itself when Redis returns.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { BulwarkError } from '../core/index.js';
import type { LimitsConfig } from './config.js';

/** What the limit stage learned about the caller. */
export interface LimitOutcome {
  /** Rows left in the caller's query budget for this model (null when no budget is set). */
  budgetRemaining: number | null;
  /** Rows used from it in the current window, this request included (null when no budget is set). */
  budgetUsed: number | null;
}

/** Recently used counter keys (hashing per request is avoidable work on the hot path). */
const keys = new Map<string, string>();

function keyOf(principal: string, model: string): string {
  const id = `${model}\u0000${principal}`;
  let k = keys.get(id);
  if (k === undefined) {
    // Principal ids stay out of the store: a hash keys the counters.
    k = `${model}:${createHash('sha256').update(principal).digest('base64url').slice(0, 22)}`;
    if (keys.size >= 10_000) keys.delete(keys.keys().next().value as string);
    keys.set(id, k);
  }
  return k;
}

/**
 * A Redis connection that fails closed: no offline queue (a command while disconnected fails at once),
 * one retry per request, and reconnection forever (at most every 2 s) so the gateway recovers without a
 * restart. Shared by the limiter and the stream detectors' state (src/robust shared-state.ts).
 */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  });
  // Connection errors surface per request as 503; the client's own error events are expected noise.
  redis.on('error', () => {});
  return redis;
}

async function take(
  l: RateLimiterAbstract,
  key: string,
  points: number,
  code: 'ERR_GATEWAY_RATE_LIMITED' | 'ERR_GATEWAY_BUDGET_EXHAUSTED',
  what?: string,
): Promise<RateLimiterRes> {
  try {
    return await l.consume(key, points);
  } catch (e) {
    if (e instanceof RateLimiterRes) {
      const retry = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new BulwarkError(
        code,
        what !== undefined
          ? `${what}; retry in ${retry} s`
          : code === 'ERR_GATEWAY_RATE_LIMITED'
            ? `rate limit reached; retry in ${retry} s`
            : `query budget for this model used up; it renews in ${retry} s`,
        { details: { retryAfterSeconds: retry } },
      );
    }
    throw new BulwarkError('ERR_GATEWAY_LIMITER_UNAVAILABLE', 'the rate-limit store cannot be reached', {
      cause: e,
    });
  }
}

/**
 * A limit of `perMinute` per principal on a kind of request (`name`: the enclave's attestations), in
 * memory or, given the gateway's Redis connection, shared by every replica (a client cannot multiply
 * its allowance by the number of replicas). `consume` throws ERR_GATEWAY_RATE_LIMITED (429, with
 * `retryAfterSeconds`) or ERR_GATEWAY_LIMITER_UNAVAILABLE (503: fail closed).
 */
export function principalLimit(
  name: string,
  perMinute: number,
  store?: { redis: Redis; keyPrefix: string },
): { consume(principal: string): Promise<void> } {
  const opts = { points: perMinute, duration: 60 };
  const l: RateLimiterAbstract = store
    ? new RateLimiterRedis({
        storeClient: store.redis,
        rejectIfRedisNotReady: true,
        ...opts,
        keyPrefix: `${store.keyPrefix}${name}`,
      })
    : new RateLimiterMemory({ ...opts, keyPrefix: name });
  return {
    consume: async (principal) => {
      await take(l, keyOf(principal, ''), 1, 'ERR_GATEWAY_RATE_LIMITED', `too many ${name} requests`);
    },
  };
}

export class Limiter {
  readonly #rate: RateLimiterAbstract;
  readonly #budget: RateLimiterAbstract | null;
  readonly #redis: Redis | null;
  readonly #keyPrefix: string;

  private constructor(
    rate: RateLimiterAbstract,
    budget: RateLimiterAbstract | null,
    redis: Redis | null,
    keyPrefix = '',
  ) {
    this.#rate = rate;
    this.#budget = budget;
    this.#redis = redis;
    this.#keyPrefix = keyPrefix;
  }

  static create(c: LimitsConfig): Limiter {
    const burst = c.burst ?? c.requestsPerSecond;
    // A fixed window of burst / rate seconds that holds `burst` requests: the sustained rate is the
    // configured one and a burst of `burst` is allowed at the start of a window.
    const rate = { points: burst, duration: Math.max(1, Math.round(burst / c.requestsPerSecond)) };
    const budget = c.queryBudget
      ? { points: c.queryBudget.queries, duration: c.queryBudget.windowSeconds }
      : null;
    if (c.backend === 'memory') {
      return new Limiter(
        new RateLimiterMemory({ ...rate, keyPrefix: 'rate' }),
        budget ? new RateLimiterMemory({ ...budget, keyPrefix: 'budget' }) : null,
        null,
      );
    }
    const r = c.redis;
    if (r === undefined)
      throw new BulwarkError('ERR_CONFIG_INVALID', 'limits.redis: required with backend redis');
    const redis = connectRedis(r.url);
    const common = { storeClient: redis, rejectIfRedisNotReady: true };
    return new Limiter(
      new RateLimiterRedis({ ...common, ...rate, keyPrefix: `${r.keyPrefix}rate` }),
      budget ? new RateLimiterRedis({ ...common, ...budget, keyPrefix: `${r.keyPrefix}budget` }) : null,
      redis,
      r.keyPrefix,
    );
  }

  /** {@link principalLimit} on this limiter's backend (its Redis connection and key prefix, if any). */
  perPrincipal(name: string, perMinute: number): { consume(principal: string): Promise<void> } {
    return principalLimit(
      name,
      perMinute,
      this.#redis ? { redis: this.#redis, keyPrefix: this.#keyPrefix } : undefined,
    );
  }

  /** The Redis connection (backend redis), shared with the stream detectors' state; null in memory. */
  get redis(): Redis | null {
    return this.#redis;
  }

  /** Whether the store is reachable now (always true in memory). */
  get healthy(): boolean {
    return this.#redis === null || this.#redis.status === 'ready';
  }

  /**
   * Takes one request from the rate limit and `rows` from the budget. Throws ERR_GATEWAY_RATE_LIMITED /
   * ERR_GATEWAY_BUDGET_EXHAUSTED (429, with `retryAfterSeconds` in details) or
   * ERR_GATEWAY_LIMITER_UNAVAILABLE (503).
   */
  async consume(principal: string, model: string, rows: number): Promise<LimitOutcome> {
    const key = keyOf(principal, model);
    await take(this.#rate, key, 1, 'ERR_GATEWAY_RATE_LIMITED');
    if (this.#budget === null) return { budgetRemaining: null, budgetUsed: null };
    let res: RateLimiterRes;
    try {
      res = await take(this.#budget, key, rows, 'ERR_GATEWAY_BUDGET_EXHAUSTED');
    } catch (e) {
      // rate-limiter-flexible adds the points before it refuses; a refused request is answered with
      // nothing, so its rows go back (else asking for more than is left would also forfeit what is left).
      if (e instanceof BulwarkError && e.code === 'ERR_GATEWAY_BUDGET_EXHAUSTED')
        await this.#budget.reward(key, rows).catch(() => {});
      throw e;
    }
    return { budgetRemaining: res.remainingPoints, budgetUsed: res.consumedPoints };
  }

  async close(): Promise<void> {
    if (this.#redis) {
      this.#redis.disconnect();
    }
  }
}
