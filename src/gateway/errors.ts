/**
 * From error codes to HTTP answers. Every denial is a JSON body `{"error": message, "code": "ERR_..."}`
 * (the Open Inference Protocol's error shape plus a stable code); never a stack trace.
 */
import { BulwarkError, type ErrorCode, ExitCode, errorCodes } from '../core/index.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_GATEWAY_REQUEST_INVALID: 400,
  ERR_INPUT_INVALID: 400,
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
  ERR_INTERNAL: 500,
  ERR_ONNX_RUNTIME: 500,
};

/** The HTTP status of an error code. */
export function httpStatus(code: ErrorCode): number {
  const s = STATUS[code];
  if (s !== undefined) return s;
  const exit = errorCodes[code].exit;
  if (exit === ExitCode.unavailable) return 503;
  if (code.startsWith('ERR_AUTH_')) return 401;
  if (exit === ExitCode.security) return 403;
  if (exit === ExitCode.input || exit === ExitCode.usage) return 400;
  return 500;
}

/** A reply of the gateway. */
export interface Reply {
  status: number;
  /** The error code, or `OK`. */
  code: string;
  body: string;
  headers?: Record<string, string>;
}

/** The reply for an error; unknown errors become ERR_INTERNAL with no detail. */
export function errorReply(e: unknown): Reply {
  const err =
    e instanceof BulwarkError ? e : new BulwarkError('ERR_INTERNAL', 'internal error', { cause: e });
  const status = httpStatus(err.code);
  const reply: Reply = {
    status,
    code: err.code,
    body: JSON.stringify({ error: err.message, code: err.code }),
  };
  const retry = err.details['retryAfterSeconds'];
  if (status === 429 && typeof retry === 'number') reply.headers = { 'retry-after': String(retry) };
  return reply;
}

export function jsonReply(status: number, value: unknown): Reply {
  return { status, code: 'OK', body: JSON.stringify(value) };
}
