/**
 * From error codes to HTTP answers. Every denial is a JSON body `{"error": message, "code": "ERR_..."}`
 * (the Open Inference Protocol's error shape plus a stable code); never a stack trace.
 *
 * The status says whose fault it is, not which CLI exit class the code belongs to: a 4xx only for the
 * codes listed below (the refusals of a client's request: malformed, unauthenticated, forbidden,
 * over a limit), 503 for a dependency that is down (the `unavailable` exit class), and 500 for
 * everything else (the gateway's own fault: a bug, ONNX Runtime failing, a model or detector that cannot
 * handle what its schema accepts). A 5xx body never carries the error's own message, which may name
 * files, hosts or a library's internals: it says only what the code means (docs/gateway.md).
 */
import { BulwarkError, type ErrorCode, ExitCode, errorCodes } from '../core/index.js';

/** The client refusals (4xx) and the fixed 5xx codes. A code not listed is 503 or 500 (below). */
const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_GATEWAY_REQUEST_INVALID: 400,
  ERR_INPUT_INVALID: 400,
  ERR_SESSION_MALFORMED: 400,
  ERR_GATEWAY_BODY_TOO_LARGE: 413,
  ERR_INPUT_TOO_LARGE: 413,
  ERR_GATEWAY_NOT_FOUND: 404,
  ERR_GATEWAY_METHOD_NOT_ALLOWED: 405,
  ERR_GATEWAY_MEDIA_TYPE: 415,
  ERR_GATEWAY_REQUEST_TIMEOUT: 408,
  ERR_GATEWAY_URL_TOO_LONG: 414,
  ERR_GATEWAY_EXPECTATION_FAILED: 417,
  ERR_GATEWAY_HEADERS_TOO_LARGE: 431,
  ERR_GATEWAY_PIPELINE_OVERFLOW: 429,
  ERR_GATEWAY_RATE_LIMITED: 429,
  ERR_GATEWAY_BUDGET_EXHAUSTED: 429,
  ERR_GATEWAY_DETECTED: 403,
  ERR_POLICY_DENIED: 403,
  ERR_SESSION_UNKNOWN: 403,
  ERR_SESSION_REPLAY: 403,
  ERR_SESSION_DECRYPT: 403,
  ERR_INTERNAL: 500,
  ERR_ONNX_RUNTIME: 500,
};

/**
 * The HTTP status of an error code: the listed client refusals, every `ERR_AUTH_*` 401, a dependency
 * down (exit class `unavailable`) 503, and 500 for anything else, whatever its exit class (an
 * `ERR_DATA_VALUE` or `ERR_SHAPE_MISMATCH` reaching the gateway's answer comes from its own model,
 * preprocessing or detectors, not from the request, which was checked by the codes above).
 */
export function httpStatus(code: ErrorCode): number {
  const s = STATUS[code];
  if (s !== undefined) return s;
  if (errorCodes[code].exit === ExitCode.unavailable) return 503;
  if (code.startsWith('ERR_AUTH_')) return 401;
  return 500;
}

/**
 * The refusals a stage may still make once the request passed every check of the request itself
 * (schema validation and the feature check): a detector's (in enforce mode) and a policy's (Cedar
 * evaluated after the detectors, with the risk score).
 */
const REFUSALS_AFTER_VALIDATION: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_GATEWAY_DETECTED',
  'ERR_POLICY_DENIED',
]);

/**
 * An error raised after the request was validated, as the gateway must answer it: the refusals of
 * those stages ({@link REFUSALS_AFTER_VALIDATION}) and a dependency down (503) are kept, and so are the
 * server faults ERR_INTERNAL and ERR_ONNX_RUNTIME; anything else (an `ERR_INPUT_INVALID`, an
 * `ERR_INVALID_ARGUMENT` from a detector, a TypeError) is the gateway's fault, ERR_INTERNAL (500),
 * with the original error as its cause for the log.
 */
export function afterValidation(e: unknown): BulwarkError {
  if (e instanceof BulwarkError) {
    if (REFUSALS_AFTER_VALIDATION.has(e.code) || e.code === 'ERR_ONNX_RUNTIME' || e.code === 'ERR_INTERNAL')
      return e;
    if (httpStatus(e.code) === 503) return e;
  }
  return new BulwarkError('ERR_INTERNAL', 'internal error', { cause: e });
}

/** A reply of the gateway. */
export interface Reply {
  status: number;
  /** The error code, or `OK`. */
  code: string;
  body: string;
  headers?: Record<string, string>;
}

/** What a 500 says (the code's meaning only); other 500 codes are answered as ERR_INTERNAL. */
const SERVER_FAULT: Partial<Record<ErrorCode, string>> = {
  ERR_INTERNAL: 'internal error',
  ERR_ONNX_RUNTIME: 'the model failed to run on this request (ONNX Runtime error)',
};

/**
 * The reply for an error. A client refusal (4xx) carries its message, written for the client; a 503 the
 * summary of its code (which dependency is down), a 500 a fixed text, and a server fault other than
 * ERR_ONNX_RUNTIME (an unknown error, a code of the gateway's own failure) is answered as ERR_INTERNAL:
 * the error itself (message, cause, stack) is for the server's log only.
 */
export function errorReply(e: unknown): Reply {
  const code: ErrorCode = e instanceof BulwarkError ? e.code : 'ERR_INTERNAL';
  const status = httpStatus(code);
  if (status >= 500) {
    const shown: ErrorCode = status === 500 && code !== 'ERR_ONNX_RUNTIME' ? 'ERR_INTERNAL' : code;
    const message = SERVER_FAULT[shown] ?? errorCodes[shown].summary;
    return { status, code: shown, body: JSON.stringify({ error: message, code: shown }) };
  }
  const err = e as BulwarkError;
  const reply: Reply = {
    status,
    code,
    body: JSON.stringify({ error: err.message, code }),
  };
  const retry = err.details['retryAfterSeconds'];
  if (status === 429 && typeof retry === 'number') reply.headers = { 'retry-after': String(retry) };
  return reply;
}

export function jsonReply(status: number, value: unknown): Reply {
  return { status, code: 'OK', body: JSON.stringify(value) };
}
