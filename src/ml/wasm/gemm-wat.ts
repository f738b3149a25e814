/**
 * Generates the WebAssembly text of the SIMD matrix-multiply micro-kernel.
 *
 * The kernel computes, for the full MR x NR blocks of C only (the caller does the ragged edges):
 *
 *   C[i, j] (+)= sum_k A[i, k] * B[k, j]
 *
 * with A read through byte strides (`rsa` between rows, `csa` between columns, so A or A^T is read in
 * place) and B, C row-major with leading dimensions `ldb`, `ldc` (bytes). Register blocking after Goto &
 * van de Geijn, "Anatomy of high-performance matrix multiplication" (ACM TOMS 2008): an MR x NR block of
 * C lives in MR * NR/4 v128 accumulators while k runs, each A element is splatted once and multiplied
 * into NR/4 vectors of B's row k. The loop order is j-panel outer, i-block inner, so a K x NR panel of B
 * stays in L1/L2 across all row blocks. The kernel is generated (not hand-unrolled) so that the block
 * shape can be re-measured; `scripts/build-ml-wasm.ts` compiles it with wabt into `gemm-bytes.ts`.
 */
export interface KernelShape {
  /** Rows of C per block. */
  mr: number;
  /** Columns of C per block (a multiple of 4: one v128 holds 4 f32). */
  nr: number;
}

/** The block shape the committed kernel was built with (2 x 16: 8 accumulators + 4 B vectors + 1 splat fit in the 16 xmm registers V8 allocates; measured best-of-5 at 31-41 GFLOP/s on training shapes against 22-27 for 4x16, which spills, 16-21 for 6x8 and 3x16, and no gain from k-blocking). */
export const KERNEL_SHAPE: KernelShape = { mr: 2, nr: 16 };

/**
 * @param shared when true the module imports a shared memory (`env.memory`, at most 16384 pages =
 * 1 GiB) instead of defining its own, so that worker threads can run the same kernel on the same data.
 */
export function gemmWat(shape: KernelShape = KERNEL_SHAPE, shared = false): string {
  const { mr, nr } = shape;
  if (!Number.isInteger(mr) || mr < 1 || !Number.isInteger(nr) || nr < 4 || nr % 4 !== 0) {
    throw new Error(`bad kernel shape ${mr}x${nr}`);
  }
  const nv = nr / 4;
  const acc = (r: number, v: number) => `$c${r}_${v}`;
  const locals: string[] = [];
  for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) locals.push(`(local ${acc(r, v)} v128)`);
  for (let v = 0; v < nv; v++) locals.push(`(local $b${v} v128)`);
  for (let r = 0; r < mr; r++) locals.push(`(local $pa${r} i32)`);

  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  emit('(module');
  emit(shared ? '  (import "env" "memory" (memory 1 16384 shared))' : '  (memory (export "memory") 1)');
  emit(
    '  (func (export "gemm") (param $m i32) (param $n i32) (param $k i32) (param $a i32) (param $rsa i32) (param $csa i32) (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32) (param $beta i32)',
  );
  emit('    (local $i i32) (local $j i32) (local $kk i32) (local $pb i32) (local $pc i32) (local $av v128)');
  emit(`    ${locals.join(' ')}`);
  // j loop over column panels
  emit('    (local.set $j (i32.const 0))');
  emit('    (block $jdone (loop $jloop');
  emit(`      (br_if $jdone (i32.gt_u (i32.add (local.get $j) (i32.const ${nr})) (local.get $n)))`);
  emit('      (local.set $i (i32.const 0))');
  emit('      (block $idone (loop $iloop');
  emit(`        (br_if $idone (i32.gt_u (i32.add (local.get $i) (i32.const ${mr})) (local.get $m)))`);
  // zero or load accumulators
  emit('        (if (local.get $beta) (then');
  for (let r = 0; r < mr; r++) {
    emit(
      `          (local.set $pc (i32.add (local.get $c) (i32.add (i32.mul (i32.add (local.get $i) (i32.const ${r})) (local.get $ldc)) (i32.shl (local.get $j) (i32.const 2)))))`,
    );
    for (let v = 0; v < nv; v++)
      emit(`          (local.set ${acc(r, v)} (v128.load offset=${v * 16} (local.get $pc)))`);
  }
  emit('        ) (else');
  for (let r = 0; r < mr; r++)
    for (let v = 0; v < nv; v++) emit(`          (local.set ${acc(r, v)} (v128.const i32x4 0 0 0 0))`);
  emit('        ))');
  // row pointers into A
  emit('        (local.set $pa0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $rsa))))');
  for (let r = 1; r < mr; r++)
    emit(`        (local.set $pa${r} (i32.add (local.get $pa${r - 1}) (local.get $rsa)))`);
  emit('        (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))');
  emit('        (local.set $kk (local.get $k))');
  emit('        (block $kdone (loop $kloop');
  emit('          (br_if $kdone (i32.eqz (local.get $kk)))');
  for (let v = 0; v < nv; v++)
    emit(`          (local.set $b${v} (v128.load offset=${v * 16} (local.get $pb)))`);
  for (let r = 0; r < mr; r++) {
    emit(`          (local.set $av (f32x4.splat (f32.load (local.get $pa${r}))))`);
    for (let v = 0; v < nv; v++) {
      emit(
        `          (local.set ${acc(r, v)} (f32x4.add (local.get ${acc(r, v)}) (f32x4.mul (local.get $av) (local.get $b${v}))))`,
      );
    }
    emit(`          (local.set $pa${r} (i32.add (local.get $pa${r}) (local.get $csa)))`);
  }
  emit('          (local.set $pb (i32.add (local.get $pb) (local.get $ldb)))');
  emit('          (local.set $kk (i32.sub (local.get $kk) (i32.const 1)))');
  emit('          (br $kloop)))');
  // store
  for (let r = 0; r < mr; r++) {
    emit(
      `        (local.set $pc (i32.add (local.get $c) (i32.add (i32.mul (i32.add (local.get $i) (i32.const ${r})) (local.get $ldc)) (i32.shl (local.get $j) (i32.const 2)))))`,
    );
    for (let v = 0; v < nv; v++)
      emit(`        (v128.store offset=${v * 16} (local.get $pc) (local.get ${acc(r, v)}))`);
  }
  emit(`        (local.set $i (i32.add (local.get $i) (i32.const ${mr})))`);
  emit('        (br $iloop)))');
  emit(`      (local.set $j (i32.add (local.get $j) (i32.const ${nr})))`);
  emit('      (br $jloop)))');
  emit('  )');
  emit(ADAM_WAT);
  emit(')');
  return `${lines.join('\n')}\n`;
}

/**
 * Adam (Kingma & Ba 2015) over n floats (a multiple of 4), f32x4 at a time, in PyTorch's form:
 * m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= step * m / (sqrt(v) * invSqrtBc2 + eps)
 * with step = lr / (1 - b1^t) and invSqrtBc2 = 1 / sqrt(1 - b2^t) computed by the caller.
 */
const ADAM_WAT = `  (func (export "adam") (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
      (param $b1 f32) (param $b2 f32) (param $step f32) (param $isb f32) (param $eps f32)
    (local $off i32) (local $end i32) (local $gv v128) (local $mv v128) (local $vv v128)
    (local $vb1 v128) (local $vb1c v128) (local $vb2 v128) (local $vb2c v128) (local $vstep v128) (local $visb v128) (local $veps v128)
    (local.set $vb1 (f32x4.splat (local.get $b1)))
    (local.set $vb1c (f32x4.splat (f32.sub (f32.const 1) (local.get $b1))))
    (local.set $vb2 (f32x4.splat (local.get $b2)))
    (local.set $vb2c (f32x4.splat (f32.sub (f32.const 1) (local.get $b2))))
    (local.set $vstep (f32x4.splat (local.get $step)))
    (local.set $visb (f32x4.splat (local.get $isb)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (local.set $off (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $off) (local.get $end)))
      (local.set $gv (v128.load (i32.add (local.get $g) (local.get $off))))
      (local.set $mv (f32x4.add (f32x4.mul (local.get $vb1) (v128.load (i32.add (local.get $m) (local.get $off))))
                                (f32x4.mul (local.get $vb1c) (local.get $gv))))
      (local.set $vv (f32x4.add (f32x4.mul (local.get $vb2) (v128.load (i32.add (local.get $v) (local.get $off))))
                                (f32x4.mul (local.get $vb2c) (f32x4.mul (local.get $gv) (local.get $gv)))))
      (v128.store (i32.add (local.get $m) (local.get $off)) (local.get $mv))
      (v128.store (i32.add (local.get $v) (local.get $off)) (local.get $vv))
      (v128.store (i32.add (local.get $p) (local.get $off))
        (f32x4.sub (v128.load (i32.add (local.get $p) (local.get $off)))
          (f32x4.div (f32x4.mul (local.get $vstep) (local.get $mv))
                     (f32x4.add (f32x4.mul (f32x4.sqrt (local.get $vv)) (local.get $visb)) (local.get $veps)))))
      (local.set $off (i32.add (local.get $off) (i32.const 16)))
      (br $next)))
  )`;
