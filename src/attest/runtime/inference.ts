/**
 * The plaintext inference protocol inside an attested session (JSON, UTF-8):
 *   request  {"inputs": [[x11, x12, ...], [x21, ...], ...]}         rows of equal width, finite numbers
 *   response {"outputs": {"<name>": {"dims": [...], "data": [...]}}}  every float32 output of the model
 *         or {"error": {"code": "ERR_...", "message": "..."}}         an input the model refused
 * Application errors travel encrypted in the response, so the host learns nothing of the input.
 */
import { BulwarkError } from '../../core/index.js';

export const MAX_ROWS = 10_000;
export const MAX_FEATURES = 4096;

export interface InferenceRequest {
  x: Float32Array;
  rows: number;
  features: number;
}

export function encodeInferenceRequest(inputs: readonly (readonly number[])[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ inputs }));
}

export function parseInferenceRequest(bytes: Uint8Array): InferenceRequest {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new BulwarkError('ERR_INPUT_INVALID', 'inference request: not JSON');
  }
  const inputs = (v as { inputs?: unknown })?.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0)
    throw new BulwarkError(
      'ERR_INPUT_INVALID',
      'inference request: "inputs" must be a non-empty array of rows',
    );
  if (inputs.length > MAX_ROWS)
    throw new BulwarkError('ERR_INPUT_TOO_LARGE', `inference request: more than ${MAX_ROWS} rows`);
  const first = inputs[0];
  const features = Array.isArray(first) ? first.length : 0;
  if (features === 0 || features > MAX_FEATURES)
    throw new BulwarkError(
      'ERR_INPUT_INVALID',
      `inference request: rows must have 1 to ${MAX_FEATURES} values`,
    );
  const x = new Float32Array(inputs.length * features);
  inputs.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== features)
      throw new BulwarkError(
        'ERR_INPUT_INVALID',
        `inference request: row ${i} does not have ${features} values`,
      );
    row.forEach((n, j) => {
      if (typeof n !== 'number' || !Number.isFinite(n))
        throw new BulwarkError(
          'ERR_INPUT_INVALID',
          `inference request: row ${i} value ${j} is not a finite number`,
        );
      x[i * features + j] = n;
    });
  });
  return { x, rows: inputs.length, features };
}

export interface InferenceResponse {
  outputs?: Record<string, { dims: number[]; data: number[] }>;
  error?: { code: string; message: string };
}

export function parseInferenceResponse(bytes: Uint8Array): InferenceResponse {
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as InferenceResponse;
}
