import type { Logger } from 'pino';
import type { AuditWriter } from '../audit/index.js';
import type { BulwarkError } from '../core/index.js';
import type { GatewayMetrics } from './metrics.js';

/**
 * The audit records of refused requests, bounded. Every refusal used to be appended on its own, and
 * refusals come before the rate limiter (which needs an authenticated caller): anyone who could reach the
 * gateway could grow the audit log without limit with requests that carry no credential at all, and a
 * caller past its rate limit did the same with its 429s. Now each caller (and all anonymous requests
 * together) has a token bucket of individual records (`audit.denials.perSecond`, `burst`); a refusal
 * beyond it is counted instead, by caller, stage and code, and the counts go to the log as one
 * `request.denied.summary` entry per `summarySeconds` while there are some. Nothing is dropped
 * silently: every refusal is either its own entry or counted in a summary (and in
 * `gateway_audit_denials_summarized_total`); the answer to the caller is the same either way.
 */

/** `audit.denials` of the configuration. */
export interface DenialsConfig {
  /** Individual records per second per caller (all anonymous requests share one bucket). */
  perSecond: number;
  /** Individual records a caller may have in a burst. */
  burst: number;
  /** How often the counted refusals are written as one summary entry. */
  summarySeconds: number;
  /** Callers whose buckets are kept; the least recently refused one is forgotten first. */
  maxCallers: number;
}

/** One refused request, as the pipeline and the attested-session layer report it. */
export interface Denial {
  requestId: string;
  /** The authenticated caller, or null when it was refused before (or at) authentication. */
  caller: string | null;
  stage: string;
  code: string;
  /** The input's digest, asked for only when the refusal gets an entry of its own. */
  inputDigest?: () => string | undefined;
}

/** Groups in one summary entry at most; the rest are counted under caller null, stage and code `*`. */
export const MAX_SUMMARY_GROUPS = 1000;
/** A caller's longest id kept in a record (the event schema's limit). */
const MAX_CALLER = 256;

interface Bucket {
  tokens: number;
  at: number;
}

export class DenialRecorder {
  readonly #audit: AuditWriter;
  readonly #c: DenialsConfig;
  readonly #logger: Logger;
  readonly #metrics: GatewayMetrics | null;
  readonly #now: () => number;
  /** Token buckets by caller ('' for anonymous), in least-recently-used order. */
  readonly #buckets = new Map<string, Bucket>();
  /** Counted refusals by `caller \0 stage \0 code`, since {@link #since}. */
  #pending = new Map<string, number>();
  #since = 0;
  #overflow = 0;
  #timer: NodeJS.Timeout | null = null;
  #writes = new Set<Promise<unknown>>();

  constructor(
    audit: AuditWriter,
    config: DenialsConfig,
    logger: Logger,
    metrics: GatewayMetrics | null = null,
    now: () => number = Date.now,
  ) {
    this.#audit = audit;
    this.#c = config;
    this.#logger = logger;
    this.#metrics = metrics;
    this.#now = now;
  }

  /** Records a refusal: its own entry while the caller's bucket allows, else counted. Never throws. */
  record(d: Denial): void {
    const caller = d.caller === null ? null : d.caller.slice(0, MAX_CALLER);
    if (this.#take(caller ?? '')) {
      const inputDigest = d.inputDigest?.();
      this.#track(
        this.#audit.append({
          type: 'request.denied',
          data: {
            requestId: d.requestId,
            caller,
            stage: d.stage,
            code: d.code,
            ...(inputDigest ? { inputDigest } : {}),
          },
        }),
        d.code,
      );
      return;
    }
    if (this.#pending.size === 0 && this.#overflow === 0) this.#since = this.#now();
    const key = `${caller ?? ''}\0${d.stage}\0${d.code}`;
    const n = this.#pending.get(key);
    if (n !== undefined) this.#pending.set(key, n + 1);
    else if (this.#pending.size < MAX_SUMMARY_GROUPS) this.#pending.set(key, 1);
    else this.#overflow++;
    this.#metrics?.auditDenialsSummarized.inc();
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      this.#track(this.#writeSummary(), 'summary');
    }, this.#c.summarySeconds * 1000).unref();
  }

  /** Writes the counted refusals now (shutdown), and waits for every record already handed over. */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#track(this.#writeSummary(), 'summary');
    await Promise.allSettled([...this.#writes]);
  }

  #take(key: string): boolean {
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#c.maxCallers)
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      b = { tokens: this.#c.burst, at: now };
    } else {
      this.#buckets.delete(key);
      b.tokens = Math.min(this.#c.burst, b.tokens + ((now - b.at) / 1000) * this.#c.perSecond);
      b.at = now;
    }
    this.#buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  async #writeSummary(): Promise<void> {
    if (this.#pending.size === 0 && this.#overflow === 0) return;
    const pending = this.#pending;
    const overflow = this.#overflow;
    const since = this.#since;
    this.#pending = new Map();
    this.#overflow = 0;
    const groups = [...pending].map(([key, count]) => {
      const [caller, stage, code] = key.split('\0') as [string, string, string];
      return { caller: caller === '' ? null : caller, stage, code, count };
    });
    if (overflow > 0) groups.push({ caller: null, stage: '*', code: '*', count: overflow });
    const count = groups.reduce((s, g) => s + g.count, 0);
    await this.#audit.append({
      type: 'request.denied.summary',
      data: {
        since: new Date(since).toISOString(),
        until: new Date(this.#now()).toISOString(),
        count,
        groups,
      },
    });
  }

  #track(p: Promise<unknown>, what: string): void {
    const w = p.catch((err: unknown) =>
      this.#logger.warn({ what, code: (err as BulwarkError).code }, 'denial not recorded'),
    );
    this.#writes.add(w);
    void w.finally(() => this.#writes.delete(w));
  }
}
