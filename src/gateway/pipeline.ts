/**
 * The request pipeline: a fixed list of stages, each timed into `gateway_stage_duration_seconds` and
 * each able to deny with a stable code (docs/gateway.md has the table):
 *
 *   parse → authenticate → authorize → limit → validate → detect → infer → extraction → harden → audit
 *
 * (with policies that read `riskScore` or `queryCount`, authorize moves after detect: see
 * {@link PipelineOptions.policyAfterDetect}; Cedar runs once per request either way).
 *
 * - parse: body bytes to JSON (size, depth, UTF-8, no `__proto__`/`constructor`/`prototype` keys), the
 *   model looked up, and the Open Inference Protocol request checked exactly (unknown fields, shapes,
 *   datatypes: 400; nothing coerced).
 * - authenticate: mTLS identity and/or JWT access token (src/gateway/auth): 401, or 503 when the JWKS
 *   cannot be fetched.
 * - authorize: Cedar (src/gateway/policy), deny by default: 403; an engine failure 503. Evaluated once.
 * - limit: rate limit and query budget per principal and model: 429; store down 503.
 * - validate: every row against the model's data schema (src/robust InputValidator): 400/413.
 * - detect: Mahalanobis distance of the features, the stateful query detector per principal: 403.
 * - infer: preprocessing and ONNX Runtime.
 * - extraction: PRADA on the principal's query stream (needs the predicted class): 403.
 * - harden: top-k labels, rounded probabilities, optional noise.
 * - audit: the prediction appended to the tamper-evident log and committed before the answer leaves
 *   (fail closed: 503 when the log cannot be written).
 *
 * Denials are recorded in the audit log too (stage and code), without waiting for the commit.
 *
 * Whose fault: once the request is validated (its rows against the schema, and their features finite),
 * what fails is the gateway's (its model, preprocessing, detectors, a bug): 500 ERR_INTERNAL (or
 * ERR_ONNX_RUNTIME), whatever code was thrown, unless it is one of the refusals of the later stages
 * (a detector, a policy reading the risk) or a dependency down (503). See `afterValidation` in
 * errors.ts. Server faults are logged with the error and counted like every answer.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { AuditWriter } from '../audit/index.js';
import { BulwarkError, sha256Digest } from '../core/index.js';
import type { QueryVerdict } from '../robust/index.js';
import type { DenialRecorder } from './denials.js';
import { afterValidation, errorReply, httpStatus, type Reply } from './errors.js';
import { parseJsonBody } from './json.js';
import type { Limiter } from './limits.js';
import type { GatewayMetrics } from './metrics.js';
import {
  type Action,
  type AuthenticatorLike,
  type AuthorizerLike,
  type AuthRequest,
  type Decision,
  decisionError,
  type Principal,
} from './peers.js';
import type { Detection, ServedModel } from './served-model.js';
import type { GatewayTracing } from './telemetry.js';

export const STAGES = [
  'parse',
  'authenticate',
  'authorize',
  'limit',
  'validate',
  'detect',
  'infer',
  'extraction',
  'harden',
  'audit',
] as const;
export type Stage = (typeof STAGES)[number];

/** Stages the protections-off benchmark may switch off (never from the configuration file). */
export type OptionalStage =
  | 'authenticate'
  | 'authorize'
  | 'limit'
  | 'validate'
  | 'detect'
  | 'extraction'
  | 'audit';

export interface PipelineOptions {
  models: ReadonlyMap<string, ServedModel>;
  authenticator: AuthenticatorLike | null;
  authorizer: AuthorizerLike | null;
  limiter: Limiter | null;
  audit: AuditWriter | null;
  /** Where refusals are recorded (bounded per caller; null without an audit log). */
  denials: DenialRecorder | null;
  metrics: GatewayMetrics;
  logger: Logger;
  detectorsMode: 'enforce' | 'monitor';
  bodyLimitBytes: number;
  maxDepth: number;
  /** Starts each request's span (sampled), or null when traces are off. */
  tracing?: Pick<GatewayTracing, 'startSpan'> | null;
  /**
   * Evaluate Cedar after the detectors instead of before the limiter, with `riskScore` and `queryCount`
   * in the context (set when a policy mentions either, which are only known then). Cedar is still
   * evaluated once per request: the order becomes authenticate → limit → validate → detect →
   * authorize, and the detectors' refusal (enforce mode) waits for the policy's permit, so a caller
   * the policy refuses cannot learn which of its inputs the detectors flag. Only when Cedar denies a
   * request that a detector flagged is it asked once more without the flagged detections, to tell a
   * risk denial (the detectors' ERR_GATEWAY_DETECTED) from a caller refused anyway. A caller the
   * policy refuses has paid one request of its own rate limit and budget and its query is in its own
   * stream detectors' history, exactly as a permitted caller's.
   * An authoriser that tells {@link AuthorizerLike.readsDetectorContext} (the built-in one does)
   * decides instead, from the policy set in force.
   */
  policyAfterDetect?: boolean;
}

/** One inference request as the transport hands it over. */
export interface InferCall {
  model: string;
  version?: string;
  body: Buffer;
  auth: AuthRequest;
  /** A transport-level refusal (body too large, wrong media type, draining), raised at the parse stage. */
  preError?: BulwarkError;
  /** The principal, when the transport authenticated this very request already (the sealed route). */
  principal?: Principal;
  /** The request's HTTP headers, read for the caller's W3C trace context when the request is traced. */
  traceHeaders?: IncomingHttpHeaders;
}

/** The principal used when authentication is switched off (benchmark only). */
const ANONYMOUS: Principal = { id: 'anonymous', roles: [], scopes: [] };

class Denied extends Error {
  constructor(
    readonly stage: Stage,
    readonly error: unknown,
  ) {
    super('denied');
  }
}

/** The models' pipeline: one instance per gateway. */
export class Pipeline {
  readonly #o: PipelineOptions;
  readonly #stageHist: Record<Stage, { observe(v: number): void }>;

  constructor(options: PipelineOptions) {
    this.#o = options;
    this.#stageHist = Object.fromEntries(
      STAGES.map((s) => [s, options.metrics.stageSeconds.labels(s)]),
    ) as unknown as Record<Stage, { observe(v: number): void }>;
  }

  get options(): PipelineOptions {
    return this.#o;
  }

  /** The principal of a non-inference request (metadata, dashboard), authorised for `action`. */
  async authorizeOther(
    auth: AuthRequest,
    action: Action,
    resource: { model: string; version?: string },
  ): Promise<Principal> {
    const o = this.#o;
    const principal = o.authenticator ? await o.authenticator.authenticate(auth) : ANONYMOUS;
    if (o.authorizer) this.#authorize(principal, action, resource, auth.remoteAddress, {});
    return principal;
  }

  #authorize(
    principal: Principal,
    action: Action,
    resource: { model: string; version?: string },
    clientAddress: string,
    extra: Record<string, string | number | boolean>,
  ): void {
    const az = this.#o.authorizer as AuthorizerLike;
    let d: Decision;
    try {
      d = az.authorize({
        principal,
        action,
        resource,
        context: { time: Math.floor(Date.now() / 1000), clientAddress, ...extra },
      });
    } catch (e) {
      throw new BulwarkError('ERR_POLICY_ENGINE', 'the policy engine failed; request denied', { cause: e });
    }
    if (!d.allow) {
      if (d.code === 'ERR_POLICY_ENGINE') throw decisionError(d, action);
      // The reply never names the policies that refused (kept in details, for the log): which forbid
      // matched tells a refused caller what it should not learn - deny-high-risk against "no permit"
      // told another tenant's caller whether the detectors flagged its input, request by request.
      throw new BulwarkError('ERR_POLICY_DENIED', `${action} not permitted`, {
        details: { action, policies: d.reasons.join(', ') },
      });
    }
  }

  /** Runs one inference request through every stage and returns the reply (never throws). */
  async infer(call: InferCall): Promise<Reply> {
    const o = this.#o;
    const start = performance.now();
    const requestId = randomUUID();
    const hist = this.#stageHist;
    let principal: Principal | null = null;
    let modelLabel = 'unknown';
    let inputDigest: string | undefined;
    let t = start;
    // Time of the feature encoding, counted with the 'infer' stage (it runs before the detectors).
    let carry = 0;
    // Time of a failed request check, counted with the 'parse' stage when its error is finally reported
    // (after authentication: see below).
    let parseCarry = 0;
    const span: Span | null = o.tracing ? o.tracing.startSpan(call.traceHeaders) : null;
    // The id the reply (x-request-id), the logs and the audit entry carry: a trace leads to its record.
    span?.setAttribute('bulwark.request_id', requestId);
    const lap = (stage: Stage) => {
      const now = performance.now();
      const ms = now - t + (stage === 'infer' ? carry : stage === 'parse' ? parseCarry : 0);
      hist[stage].observe(ms / 1000);
      span?.addEvent(stage, { ms });
      t = now;
    };
    let stage: Stage = 'parse';
    // Set once the request passed every check of the request itself: from there, a failure is ours.
    let validated = false;
    o.metrics.inFlight.inc();
    try {
      // parse
      if (call.preError) throw call.preError;
      const json = parseJsonBody(call.body, o.bodyLimitBytes, o.maxDepth);
      const model = o.models.get(call.model);
      const unknown = model === undefined || (call.version !== undefined && call.version !== model.version);
      if (unknown || !model.ready) {
        // Zero trust: which model names and versions are served is itself information, so a caller
        // learns it only once authenticated (a 401 for everyone else, as for a served model) and
        // permitted to predict on that name (a 403 otherwise, as the metadata route answers): else
        // another tenant's caller could tell its model names (403) from free ones (404).
        let who = call.principal ?? ANONYMOUS;
        if (o.authenticator && call.principal === undefined) {
          stage = 'authenticate';
          who = await o.authenticator.authenticate(call.auth);
        }
        principal = who; // known from here: the denial's audit record names it
        if (o.authorizer) {
          stage = 'authorize';
          const resource = {
            model: call.model,
            ...(call.version !== undefined ? { version: call.version } : {}),
          };
          this.#authorize(who, 'predict', resource, call.auth.remoteAddress, {});
        }
        stage = 'parse';
        if (unknown)
          throw new BulwarkError(
            'ERR_GATEWAY_NOT_FOUND',
            call.version === undefined ? 'no such model' : 'no such model version',
          );
        throw new BulwarkError('ERR_GATEWAY_NOT_READY', 'the model is not ready');
      }
      modelLabel = model.name;
      // The request is checked against the model's inputs here, but a failure is reported only after
      // authentication and only to a caller the policies permit to predict on this model: its message
      // names the model's inputs, datatypes and row limit, and a 400 for a served name (against the
      // 401/403 of an unknown one) would tell anyone which model names are served (see the unknown-model
      // branch above). JSON errors before it say nothing about the model and are reported at once.
      let req: ReturnType<ServedModel['parseRequest']> | undefined;
      let parseError: unknown;
      try {
        req = model.parseRequest(json);
      } catch (e) {
        parseError = e;
      }
      if (req === undefined) {
        const now = performance.now();
        parseCarry = now - t;
        t = now;
      } else lap('parse');

      stage = 'authenticate';
      principal =
        call.principal ?? (o.authenticator ? await o.authenticator.authenticate(call.auth) : ANONYMOUS);
      lap('authenticate');

      // With policies that read riskScore/queryCount, Cedar is evaluated once, after the detectors,
      // when both are known (see PipelineOptions.policyAfterDetect); otherwise here.
      // Asked of the authoriser per request: its answer changes with the policy set it swaps in on a
      // reload, at the same moment (the option is a second, later reading of the files).
      const late =
        o.authorizer !== null && (o.authorizer.readsDetectorContext ?? o.policyAfterDetect === true);
      const resource = { model: model.name, version: model.version };
      if (req === undefined) {
        stage = 'authorize';
        this.#mayLearn(principal, resource, call.auth.remoteAddress, late ? { riskScore: 0 } : {});
        stage = 'parse';
        throw parseError;
      }
      const rows = req.rows.length;
      if (o.authorizer && !late) {
        stage = 'authorize';
        this.#authorize(principal, 'predict', resource, call.auth.remoteAddress, { rows });
        lap('authorize');
      }

      stage = 'limit';
      let lim: Awaited<ReturnType<Limiter['consume']>> | null = null;
      try {
        lim = o.limiter ? await o.limiter.consume(principal.id, model.name, rows) : null;
      } catch (e) {
        // With the policy after the detectors, a caller it refuses is counted here too: its 429 on a
        // served name (against the 403 of an unknown one) would tell another tenant's caller which
        // names are served once it passed its own limit. The 429 goes only to a caller it permits.
        if (late && e instanceof BulwarkError && httpStatus(e.code) === 429) {
          stage = 'authorize';
          this.#mayLearn(principal, resource, call.auth.remoteAddress, { rows, riskScore: 0 });
          stage = 'limit';
        }
        throw e;
      }
      if (lim?.budgetRemaining != null)
        o.metrics.budgetRemaining.labels(model.name).observe(lim.budgetRemaining);
      lap('limit');

      stage = 'validate';
      let x: Float32Array;
      try {
        model.validate(req.rows);
        lap('validate');
        // Features are computed once: detectors and the model see the same vector.
        stage = 'infer';
        x = model.features(req.rows);
      } catch (e) {
        // With the policy after the detectors, Cedar has not judged this caller yet: a refusal naming
        // the schema's fields, bounds and categories goes only to a caller it permits (judged as if no
        // detector flagged); another is refused by the policy, as before validation.
        if (late) {
          const failed = stage;
          const extra: Record<string, string | number | boolean> = { rows, riskScore: 0 };
          if (lim?.budgetUsed != null) extra['queryCount'] = lim.budgetUsed;
          stage = 'authorize';
          this.#mayLearn(principal, resource, call.auth.remoteAddress, extra);
          stage = failed;
        }
        throw e;
      }
      validated = true;
      carry = performance.now() - t;
      t += carry;

      stage = 'detect';
      const detections: Detection[] = [];
      if (model.mahalanobis) {
        const { scores } = model.mahalanobis.scoreSync(x, rows);
        let worst = 0;
        // A NaN score (not reachable with finite features and loaded state) counts as the worst:
        // fail closed, as the detectors' own flag() does.
        for (let i = 0; i < rows; i++) {
          const s = scores[i] as number;
          worst = Number.isNaN(s) ? Infinity : Math.max(worst, s);
        }
        const threshold = model.mahalanobis.calibration?.threshold ?? Infinity;
        detections.push({ detector: 'mahalanobis', score: worst, flagged: worst > threshold });
      }
      if (model.stateful) {
        const v = worstVerdict(await model.observeStateful(principal.id, x, rows));
        if (v) detections.push({ detector: 'stateful', ...v });
      }
      this.#count(model, detections);
      lap('detect');

      if (late) {
        stage = 'authorize';
        const extra: Record<string, string | number | boolean> = {
          rows,
          riskScore: riskScore(model, detections),
        };
        if (lim?.budgetUsed != null) extra['queryCount'] = lim.budgetUsed;
        try {
          this.#authorize(principal, 'predict', resource, call.auth.remoteAddress, extra);
        } catch (e) {
          // A denial the detectors caused (a risk policy), for a caller the policy permits when no
          // detector flags, is the detectors' refusal in enforce mode (ERR_GATEWAY_DETECTED, as
          // without Cedar). A caller refused either way gets the policy's denial: it must not learn
          // which of its inputs the detectors flag. The second decision is taken only on this path.
          if (this.#flaggedOnly(e, detections, principal, resource, call.auth.remoteAddress, extra, model)) {
            stage = 'detect';
            this.#enforce(detections);
          }
          throw e;
        }
        lap('authorize');
      }
      // The detectors' refusal only after the policy permitted (see above).
      stage = 'detect';
      this.#enforce(detections);

      stage = 'infer';
      const p = await model.predict(x, rows);
      lap('infer');

      stage = 'extraction';
      if (model.prada) {
        const v = worstVerdict(await model.observePrada(principal.id, x, model.argmax(p, rows), rows));
        if (v) {
          const det = { detector: 'prada', ...v };
          detections.push(det);
          this.#judge(model, [det]);
        }
      }
      lap('extraction');

      stage = 'harden';
      const { outputs, labels } = model.harden(p, rows, req.outputs);
      lap('harden');

      stage = 'audit';
      if (o.audit) {
        inputDigest = sha256Digest(call.body);
        const topK = model.output.topK;
        const decision = Array.from({ length: rows }, (_, r) => String(labels[r * topK] ?? '')).join(',');
        try {
          await o.audit.append({
            type: 'prediction',
            data: {
              requestId,
              caller: principal.id.slice(0, 256),
              modelDigest: model.loaded.modelDigest,
              ...(model.loaded.packageDigest ? { packageDigest: model.loaded.packageDigest } : {}),
              inputDigest,
              decision: decision.length > 256 ? `${decision.slice(0, 250)}…` : decision || '-',
              detections,
              latencyMs: performance.now() - start,
            },
          });
        } catch (e) {
          if (e instanceof BulwarkError && e.code === 'ERR_AUDIT_UNAVAILABLE') throw e;
          throw new BulwarkError(
            'ERR_AUDIT_UNAVAILABLE',
            'the audit log cannot be written; request refused',
            {
              cause: e,
            },
          );
        }
      }
      lap('audit');

      const body = JSON.stringify({
        model_name: model.name,
        model_version: model.version,
        id: req.id ?? requestId,
        outputs,
      });
      o.metrics.requests.labels(model.name, 'OK').inc();
      o.metrics.requestSeconds.labels(model.name).observe((performance.now() - start) / 1000);
      span?.setAttribute('bulwark.code', 'OK');
      return { status: 200, code: 'OK', body, headers: { 'x-request-id': requestId } };
    } catch (e) {
      const err = e instanceof Denied ? e.error : e;
      const reply = errorReply(validated ? afterValidation(err) : err);
      lap(stage);
      o.metrics.requests.labels(modelLabel, reply.code).inc();
      o.metrics.denials.labels(stage, reply.code).inc();
      span?.setAttribute('bulwark.code', reply.code);
      span?.setAttribute('bulwark.stage', stage);
      // The error itself (message, cause, stack) goes to the log only, never into the reply.
      if (reply.status >= 500) o.logger.error({ requestId, stage, code: reply.code, err }, 'request failed');
      else
        o.logger.debug(
          {
            requestId,
            stage,
            code: reply.code,
            ...(err instanceof BulwarkError && err.details['policies']
              ? { policies: err.details['policies'] }
              : {}),
          },
          'request denied',
        );
      if (o.denials && stage !== 'audit') {
        const known = inputDigest;
        o.denials.record({
          requestId,
          caller: principal ? principal.id : null,
          stage,
          code: reply.code,
          // Hashed only for a refusal recorded on its own: a flood of large refused bodies that is
          // being counted costs no hashing.
          inputDigest: () => known ?? (call.body.length > 0 ? sha256Digest(call.body) : undefined),
        });
      }
      reply.headers = { ...reply.headers, 'x-request-id': requestId };
      return reply;
    } finally {
      o.metrics.inFlight.dec();
      span?.end();
    }
  }

  /**
   * Before a refusal that describes the model's inputs reaches a caller the policies have not judged
   * yet: throws the policy's denial (stage `authorize`) unless they permit `principal` to predict on
   * `resource`. Without an authoriser (benchmark only) everyone may learn it.
   */
  #mayLearn(
    principal: Principal,
    resource: { model: string; version?: string },
    clientAddress: string,
    extra: Record<string, string | number | boolean>,
  ): void {
    if (!this.#o.authorizer) return;
    this.#authorize(principal, 'predict', resource, clientAddress, extra);
  }

  #judge(model: ServedModel, detections: Detection[]): void {
    this.#count(model, detections);
    this.#enforce(detections);
  }

  /**
   * Whether policy denial `e` is owed to the detectors only: enforce mode, a detector flagged, and the
   * policy permits the same request with the flagged detections left out of `riskScore`.
   */
  #flaggedOnly(
    e: unknown,
    detections: Detection[],
    principal: Principal,
    resource: { model: string; version?: string },
    clientAddress: string,
    extra: Record<string, string | number | boolean>,
    model: ServedModel,
  ): boolean {
    if (!(e instanceof BulwarkError) || e.code !== 'ERR_POLICY_DENIED') return false;
    if (this.#o.detectorsMode !== 'enforce' || !detections.some((d) => d.flagged)) return false;
    const quiet = riskScore(
      model,
      detections.filter((d) => !d.flagged),
    );
    try {
      this.#authorize(principal, 'predict', resource, clientAddress, { ...extra, riskScore: quiet });
      return true;
    } catch {
      return false;
    }
  }

  /** Counts the flagged detections (monitor and enforce modes alike). */
  #count(model: ServedModel, detections: Detection[]): void {
    for (const det of detections)
      if (det.flagged) this.#o.metrics.detections.labels(model.name, det.detector).inc();
  }

  /** In enforce mode, refuses a request any detector flagged. */
  #enforce(detections: Detection[]): void {
    if (this.#o.detectorsMode !== 'enforce') return;
    const det = detections.find((d) => d.flagged);
    if (det)
      throw new BulwarkError('ERR_GATEWAY_DETECTED', `request flagged by the ${det.detector} detector`, {
        details: { detector: det.detector },
      });
  }
}

/**
 * A stream detector's verdict on a request: the highest score over its rows (NaN rows, still too early
 * to judge, ignored) and flagged if any row was; null when no row could be judged or flagged.
 */
function worstVerdict(verdicts: readonly QueryVerdict[]): { score: number; flagged: boolean } | null {
  let worst = Number.NEGATIVE_INFINITY;
  let flagged = false;
  for (const v of verdicts) {
    if (Number.isFinite(v.score)) worst = Math.max(worst, v.score);
    flagged ||= v.flagged;
  }
  if (!Number.isFinite(worst) && !flagged) return null;
  return { score: Number.isFinite(worst) ? worst : 0, flagged };
}

/**
 * The request's risk in [0, 1] for policies (`context.riskScore`): the Mahalanobis score over twice its
 * calibrated threshold (0.5 at the threshold, 1 at twice it or beyond), and 1 when a stream detector
 * (stateful, PRADA) flagged the caller; the highest of these.
 */
export function riskScore(model: ServedModel, detections: readonly Detection[]): number {
  let r = 0;
  for (const d of detections) {
    if (d.detector === 'mahalanobis') {
      const t = model.mahalanobis?.calibration?.threshold ?? Infinity;
      if (Number.isFinite(t) && t > 0) r = Math.max(r, Math.min(1, Math.max(0, d.score / (2 * t))));
    } else if (d.flagged) r = 1;
  }
  return Math.round(r * 10_000) / 10_000;
}
