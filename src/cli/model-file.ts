import { BulwarkError, readInputFile } from '../core/index.js';
import { PACKAGE_MAGIC } from '../model/index.js';

/**
 * The bytes of an ONNX model file for the commands that run a model in the clear (predict, evaluate,
 * data inspect). A protected package (.bwm) is refused by name: its model is encrypted, and without
 * this check the ONNX decoder reported "not an ONNX model: invalid wire type 4 at offset 3".
 */
export async function readOnnxModelFile(path: string): Promise<Uint8Array> {
  const bytes = await readInputFile(path, 'model file');
  if (bytes.length >= PACKAGE_MAGIC.length && PACKAGE_MAGIC.equals(bytes.subarray(0, PACKAGE_MAGIC.length)))
    throw new BulwarkError(
      'ERR_FORMAT_UNSUPPORTED',
      `${path} is a protected model package (.bwm), whose model is encrypted: give the ONNX model it was made from (a package is served by bulwark serve, checked by bulwark model verify)`,
      { details: { path } },
    );
  return bytes;
}
