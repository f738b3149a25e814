/**
 * Reading back the JSON entries Bulwark writes into the metadata_props of the ONNX models it trains
 * (`bulwark.pipeline`, `bulwark.class_values`, ...). One reader for every consumer (predict, evaluate,
 * data inspect, continued training, the gateway), so a missing or corrupt entry fails the same way
 * everywhere: ERR_ONNX_INVALID naming the model and the entry.
 */
import { BulwarkError } from '../../core/index.js';

/**
 * The parsed JSON value of metadata entry `key`. `what` names the model in messages (a file name, or
 * `models.NAME` in the gateway's configuration). With `required`, a missing entry is an error;
 * otherwise it gives `undefined`.
 */
export function metadataJson<T>(
  meta: Readonly<Record<string, string>>,
  key: string,
  what: string,
  required: true,
): T;
export function metadataJson<T>(
  meta: Readonly<Record<string, string>>,
  key: string,
  what: string,
  required?: false,
): T | undefined;
export function metadataJson<T>(
  meta: Readonly<Record<string, string>>,
  key: string,
  what: string,
  required = false,
): T | undefined {
  const v = meta[key];
  if (v === undefined) {
    if (!required) return undefined;
    throw new BulwarkError(
      'ERR_ONNX_INVALID',
      `${what}: no "${key}" metadata (train the model with bulwark train)`,
    );
  }
  try {
    return JSON.parse(v) as T;
  } catch (e) {
    throw new BulwarkError('ERR_ONNX_INVALID', `${what}: model metadata "${key}" is not valid JSON`, {
      cause: e,
    });
  }
}
