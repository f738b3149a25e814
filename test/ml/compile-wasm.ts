import wabtInit from 'wabt';
import { gemmWat, type KernelShape } from '../../src/ml/wasm/gemm-wat.js';

/** Compiles the generated kernel text with wabt (a devDependency: tests and the build script only). */
export async function compileGemmWasm(shape: KernelShape): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat('gemm.wat', gemmWat(shape), { simd: true });
  try {
    mod.validate();
    return mod.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    mod.destroy();
  }
}
