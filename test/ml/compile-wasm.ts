import wabtInit from 'wabt';
import { gemmWat, type KernelShape } from '../../src/ml/wasm/gemm-wat.js';

/** Compiles the generated kernel text with wabt (a devDependency: tests and the build script only). */
export async function compileGemmWasm(shape: KernelShape, shared = false): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat('gemm.wat', gemmWat(shape, shared), { simd: true, threads: true });
  try {
    // wabt.js's validate() ignores the parse features (it refuses shared memories); the engine
    // validates the shared variant when it is instantiated (tested).
    if (!shared) mod.validate();
    return mod.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    mod.destroy();
  }
}
