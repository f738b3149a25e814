/**
 * Scanning models people bring, before anything loads them (after ProtectAI's ModelScan).
 *
 * Python pickle runs code while it loads: the GLOBAL / INST / STACK_GLOBAL opcodes import any callable
 * (`os.system`, `builtins.eval`, …) and REDUCE / NEWOBJ / OBJ / INST call it with arguments from the
 * stream. PyTorch `.pt`/`.pth` files (a zip with `data.pkl`, or the legacy sequence of pickles) and
 * joblib files are pickles too. So every pickle-based file is refused, and the report lists the
 * imports the pickle would perform, found by walking its opcodes (protocols 0-5, as in CPython's
 * Lib/pickletools.py) with a symbolic stack and memo — the pickle is never unpickled. Imports from
 * the list of modules ModelScan rates critical or high are marked so.
 *
 * ONNX models are safe to parse (protobuf), but a tensor's external data names a file by path: an
 * absolute path or one that climbs out of the model's folder (`..`, or a symlink pointing out) lets a
 * model read any file the server can (e.g. `/etc/shadow` or a key) into its weights, so such models
 * are refused. safetensors files hold only a JSON header and raw tensors: safe.
 */
import { lstat, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, normalize, resolve, sep } from 'node:path';
import { gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { BulwarkError, readInputFile } from '../core/index.js';
import { externalTensors, ONNX_LIMITS, onnxCounts } from './onnx-info.js';
import { type OnnxMemoryOptions, onnxMemoryBound } from './onnx-memory.js';

/** Options of {@link scanModel}. */
export interface ScanOptions {
  /**
   * The memory bound an ONNX model is checked against (`onnxMemoryBound`; its defaults unless given):
   * what the commands that will open the model use (`--max-model-memory`).
   */
  memory?: OnnxMemoryOptions;
}

export type ScanSeverity = 'critical' | 'high' | 'medium' | 'info';

/** One import a pickle performs. */
export interface PickleImport {
  module: string;
  name: string;
  severity: ScanSeverity;
  opcode: 'GLOBAL' | 'INST' | 'STACK_GLOBAL';
  /** Byte offset of the opcode within its pickle. */
  offset: number;
  /** Zip member (PyTorch archives) the pickle is in. */
  entry?: string;
}

export interface ScanFinding {
  severity: ScanSeverity;
  message: string;
}

export type ScannedFormat =
  | 'onnx'
  | 'pickle'
  | 'pytorch-zip'
  | 'pytorch-legacy'
  | 'joblib'
  | 'safetensors'
  | 'zip'
  | 'unknown';

export interface ScanReport {
  path: string;
  format: ScannedFormat;
  /** Whether the file may be loaded: no code runs on load and no data is read from outside its folder. */
  safe: boolean;
  imports: PickleImport[];
  /** Calls the pickle makes (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST). */
  calls: number;
  findings: ScanFinding[];
}

/**
 * Modules and names ModelScan (protectai/modelscan, settings.py) rates as unsafe globals; `*` means
 * every name of the module.
 */
/** Python 3's `builtins` and Python 2's `__builtin__` have the same dangerous names. */
const UNSAFE_BUILTINS = [
  'eval',
  'compile',
  'getattr',
  'apply',
  'exec',
  'open',
  'breakpoint',
  '__import__',
  'setattr',
  'delattr',
] as const;

const UNSAFE: Record<string, { severity: ScanSeverity; names: '*' | readonly string[] }> = {
  builtins: { severity: 'critical', names: UNSAFE_BUILTINS },
  __builtin__: { severity: 'critical', names: UNSAFE_BUILTINS },
  runpy: { severity: 'critical', names: '*' },
  os: { severity: 'critical', names: '*' },
  nt: { severity: 'critical', names: '*' },
  posix: { severity: 'critical', names: '*' },
  socket: { severity: 'critical', names: '*' },
  subprocess: { severity: 'critical', names: '*' },
  sys: { severity: 'critical', names: '*' },
  operator: { severity: 'critical', names: ['attrgetter', 'methodcaller'] },
  pty: { severity: 'critical', names: '*' },
  pickle: { severity: 'critical', names: '*' },
  _pickle: { severity: 'critical', names: '*' },
  bdb: { severity: 'critical', names: '*' },
  pdb: { severity: 'critical', names: '*' },
  shutil: { severity: 'critical', names: '*' },
  asyncio: { severity: 'critical', names: '*' },
  importlib: { severity: 'critical', names: '*' },
  code: { severity: 'critical', names: '*' },
  ctypes: { severity: 'critical', names: '*' },
  webbrowser: { severity: 'high', names: '*' },
  httplib: { severity: 'high', names: '*' },
  'http.client': { severity: 'high', names: '*' },
  'requests.api': { severity: 'high', names: '*' },
  requests: { severity: 'high', names: '*' },
  'aiohttp.client': { severity: 'high', names: '*' },
  'urllib.request': { severity: 'high', names: '*' },
};

function severityOf(module: string, name: string): ScanSeverity {
  // `os.path` is os too; `subprocess.Popen` etc. Match the module and its parents.
  const parts = module.split('.');
  for (let i = parts.length; i > 0; i--) {
    const m = parts.slice(0, i).join('.');
    const rule = UNSAFE[m];
    if (rule && (rule.names === '*' || rule.names.includes(name))) return rule.severity;
  }
  return 'info';
}

// --- pickle opcode walk ------------------------------------------------------------------------

type Sym = { s: string } | { o: true } | { mark: true };
const OTHER: Sym = { o: true };
const MARK: Sym = { mark: true };

interface WalkResult {
  imports: PickleImport[];
  calls: number;
  /** Where the pickle ended (after STOP), or where walking stopped. */
  end: number;
  stopped: boolean;
  error?: string;
}

const latin1 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const utf8s = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

/**
 * Opcodes whose argument is a fixed number of bytes and that push one value the walk does not follow
 * (pickletools: BININT 4, BININT1 1, BININT2 2, BINFLOAT 8, EXT1 1, EXT2 2, EXT4 4).
 */
const FIXED_OPAQUE: ReadonlyMap<number, number> = new Map([
  [0x4a, 4],
  [0x4b, 1],
  [0x4d, 2],
  [0x47, 8],
  [0x82, 1],
  [0x83, 2],
  [0x84, 4],
]);

/**
 * Opcodes whose payload follows a little-endian length of the given width and that push one value
 * the walk does not follow (BINBYTES 4, SHORT_BINBYTES 1, BINBYTES8 8, BYTEARRAY8 8, LONG1 1, LONG4 4).
 */
const SIZED_OPAQUE: ReadonlyMap<number, number> = new Map([
  [0x42, 4],
  [0x43, 1],
  [0x8e, 8],
  [0x96, 8],
  [0x8a, 1],
  [0x8b, 4],
]);

/**
 * Opcodes pushing a length-prefixed string the walk follows (module and name of STACK_GLOBAL):
 * BINSTRING, SHORT_BINSTRING (latin-1), BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 (UTF-8).
 */
const SIZED_STRING: ReadonlyMap<number, readonly [number, (b: Uint8Array) => string]> = new Map([
  [0x54, [4, latin1]],
  [0x55, [1, latin1]],
  [0x58, [4, utf8s]],
  [0x8c, [1, utf8s]],
  [0x8d, [8, utf8s]],
] as const);

/** Walks one pickle starting at `start` (never executes anything). */
export function walkPickle(buf: Uint8Array, start = 0, entry?: string): WalkResult {
  const imports: PickleImport[] = [];
  let calls = 0;
  const stack: Sym[] = [];
  const memo = new Map<number, Sym>();
  let p = start;
  const n = buf.length;
  const need = (k: number): void => {
    if (p + k > n) throw new Error(`truncated at byte ${p}`);
  };
  const u = (k: number): number => {
    need(k);
    let v = 0;
    for (let i = k - 1; i >= 0; i--) v = v * 256 + buf[p + i]!;
    p += k;
    return v;
  };
  const bytes = (k: number): Uint8Array => {
    need(k);
    const b = buf.subarray(p, p + k);
    p += k;
    return b;
  };
  const line = (): string => {
    let q = p;
    while (q < n && buf[q] !== 0x0a) q++;
    if (q >= n) throw new Error(`unterminated line at byte ${p}`);
    const s = latin1(buf.subarray(p, q));
    p = q + 1;
    return s;
  };
  const pop = (k = 1): Sym[] => {
    const out: Sym[] = [];
    for (let i = 0; i < k; i++) out.push(stack.pop() ?? OTHER);
    return out;
  };
  const popMark = (): Sym[] => {
    const out: Sym[] = [];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if ('mark' in t) return out.reverse();
      out.push(t);
    }
    return out.reverse();
  };
  const push = (s: Sym): void => {
    stack.push(s);
  };
  const top = (): Sym => stack[stack.length - 1] ?? OTHER;
  const addImport = (module: string, name: string, opcode: PickleImport['opcode'], offset: number): void => {
    const imp: PickleImport = {
      module,
      name,
      severity: severityOf(module, name),
      opcode,
      offset: offset - start,
    };
    if (entry !== undefined) imp.entry = entry;
    imports.push(imp);
  };
  try {
    while (p < n) {
      const at = p;
      const op = buf[p++]!;
      const fixed = FIXED_OPAQUE.get(op);
      if (fixed !== undefined) {
        bytes(fixed);
        push(OTHER);
        continue;
      }
      const sized = SIZED_OPAQUE.get(op);
      if (sized !== undefined) {
        bytes(u(sized));
        push(OTHER);
        continue;
      }
      const str = SIZED_STRING.get(op);
      if (str !== undefined) {
        push({ s: str[1](bytes(u(str[0]))) });
        continue;
      }
      switch (op) {
        case 0x28: // MARK
          push(MARK);
          break;
        case 0x2e: // STOP
          return { imports, calls, end: p, stopped: true };
        case 0x30: // POP
          pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          push(top());
          break;
        case 0x46: // FLOAT
        case 0x49: // INT
        case 0x4c: // LONG
        case 0x50: // PERSID
          line();
          push(OTHER);
          break;
        case 0x53: // STRING (quoted repr)
          push({ s: line().replace(/^['"]|['"]$/g, '') });
          break;
        case 0x56: // UNICODE (raw-unicode-escape)
          push({ s: line() });
          break;
        case 0x51: // BINPERSID
          pop();
          push(OTHER);
          break;
        case 0x4e: // NONE
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
        case 0x7d: // EMPTY_DICT
        case 0x5d: // EMPTY_LIST
        case 0x29: // EMPTY_TUPLE
        case 0x8f: // EMPTY_SET
        case 0x97: // NEXT_BUFFER
          push(OTHER);
          break;
        case 0x63: // GLOBAL module\n name\n
        case 0x69: {
          // INST module\n name\n: imports and calls with the items since MARK
          const module = line();
          const name = line();
          addImport(module, name, op === 0x63 ? 'GLOBAL' : 'INST', at);
          if (op === 0x69) {
            popMark();
            calls++;
          }
          push(OTHER);
          break;
        }
        case 0x93: {
          // STACK_GLOBAL: name on top, module below
          const [name, module] = pop(2);
          const m = module && 's' in module ? module.s : '<unknown: not a constant string>';
          const nm = name && 's' in name ? name.s : '<unknown: not a constant string>';
          addImport(m, nm, 'STACK_GLOBAL', at);
          push(OTHER);
          break;
        }
        case 0x52: // REDUCE
        case 0x81: // NEWOBJ
          pop(2);
          calls++;
          push(OTHER);
          break;
        case 0x92: // NEWOBJ_EX
          pop(3);
          calls++;
          push(OTHER);
          break;
        case 0x6f: // OBJ
          popMark();
          calls++;
          push(OTHER);
          break;
        case 0x62: // BUILD (may call __setstate__)
          pop();
          break;
        case 0x61: // APPEND
          pop();
          break;
        case 0x65: // APPENDS
        case 0x75: // SETITEMS
        case 0x90: // ADDITEMS
          popMark();
          break;
        case 0x73: // SETITEM
          pop(2);
          break;
        case 0x64: // DICT
        case 0x6c: // LIST
        case 0x74: // TUPLE
        case 0x91: // FROZENSET
          popMark();
          push(OTHER);
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: // TUPLE3
          pop(op - 0x84);
          push(OTHER);
          break;
        case 0x67: // GET
          push(memo.get(Number.parseInt(line(), 10)) ?? OTHER);
          break;
        case 0x68: // BINGET
          push(memo.get(u(1)) ?? OTHER);
          break;
        case 0x6a: // LONG_BINGET
          push(memo.get(u(4)) ?? OTHER);
          break;
        case 0x70: // PUT
          memo.set(Number.parseInt(line(), 10), top());
          break;
        case 0x71: // BINPUT
          memo.set(u(1), top());
          break;
        case 0x72: // LONG_BINPUT
          memo.set(u(4), top());
          break;
        case 0x94: // MEMOIZE
          memo.set(memo.size, top());
          break;
        case 0x80: // PROTO
          u(1);
          break;
        case 0x95: // FRAME
          u(8);
          break;
        case 0x98: // READONLY_BUFFER
          break;
        default:
          return {
            imports,
            calls,
            end: at,
            stopped: false,
            error: `unknown opcode 0x${op.toString(16)} at byte ${at - start}`,
          };
      }
    }
    return { imports, calls, end: p, stopped: false, error: 'no STOP opcode: truncated' };
  } catch (e) {
    return { imports, calls, end: p, stopped: false, error: (e as Error).message };
  }
}

/** Walks every pickle found back to back (legacy torch.save writes several). */
function walkPickles(buf: Uint8Array, entry?: string): WalkResult {
  const all: WalkResult = { imports: [], calls: 0, end: 0, stopped: true };
  let p = 0;
  for (let k = 0; k < 64 && p < buf.length; k++) {
    const r = walkPickle(buf, p, entry);
    all.imports.push(...r.imports.map((i) => ({ ...i, offset: i.offset + p })));
    all.calls += r.calls;
    all.end = r.end;
    if (!r.stopped) {
      all.stopped = false;
      if (r.error !== undefined) all.error = r.error;
      break;
    }
    p = r.end;
    // Another pickle follows only if the next byte starts one (PROTO); otherwise data follows (legacy
    // torch writes raw tensor storage after its pickles).
    if (buf[p] !== 0x80) break;
  }
  return all;
}

// --- zip (PyTorch archives) ---------------------------------------------------------------------

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

function zipEntries(buf: Buffer): ZipEntry[] {
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes (APPNOTE 4.3.16).
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('no end of central directory');
  let count = buf.readUInt16LE(eocd + 10);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  // ZIP64 (PyTorch writes it for large checkpoints): locator just before the EOCD.
  if (
    (count === 0xffff || cdOffset === 0xffffffff) &&
    eocd >= 20 &&
    buf.readUInt32LE(eocd - 20) === 0x07064b50
  ) {
    const z64 = Number(buf.readBigUInt64LE(eocd - 12));
    if (buf.readUInt32LE(z64) !== 0x06064b50) throw new Error('bad ZIP64 end record');
    count = Number(buf.readBigUInt64LE(z64 + 32));
    cdOffset = Number(buf.readBigUInt64LE(z64 + 48));
  }
  const out: ZipEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory');
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    // ZIP64 extra field (id 1): the values that were 0xffffffff, in order.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) {
          size = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (localOffset === 0xffffffff) localOffset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, size, localOffset });
    p = eEnd + commentLen;
  }
  return out;
}

function zipRead(buf: Buffer, e: ZipEntry): Buffer {
  const h = e.localOffset;
  if (buf.readUInt32LE(h) !== 0x04034b50) throw new Error(`bad local header for ${e.name}`);
  const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
  const data = buf.subarray(start, start + e.compressedSize);
  if (e.method === 0) return data;
  // Pickles in PyTorch archives hold structure, not tensor data: 256 MiB bounds a decompression bomb.
  if (e.method === 8) return inflateRawSync(data, { maxOutputLength: 256 << 20 });
  throw new Error(`${e.name}: compression method ${e.method} not supported`);
}

// --- entry point ----------------------------------------------------------------------------------

const PICKLE_EXT = /\.(pkl|pickle|p|dat|joblib|pt|pth|ckpt|bin|sav|npy)$/i;

function looksLikePickle(b: Buffer): boolean {
  if (b.length >= 2 && b[0] === 0x80 && b[1]! >= 2 && b[1]! <= 5) return true;
  // Protocol 0/1 pickles start with MARK, a container, or GLOBAL and end with STOP.
  return b.length >= 2 && [0x28, 0x63, 0x5d, 0x7d, 0x29].includes(b[0]!) && b[b.length - 1] === 0x2e;
}

function pathEscapes(location: string, modelDir: string): string | undefined {
  if (location === '') return 'an empty path';
  if (isAbsolute(location) || /^[A-Za-z]:[\\/]/.test(location) || location.startsWith('\\'))
    return 'an absolute path';
  if (location.includes('\0')) return 'a NUL byte';
  const norm = normalize(location.replace(/\\/g, '/'));
  if (norm.split(/[\\/]/).includes('..')) return 'a path that climbs out of the model folder';
  const full = resolve(modelDir, norm);
  if (full !== modelDir && !full.startsWith(modelDir + sep)) return 'a path outside the model folder';
  return undefined;
}

/**
 * What Bulwark's commands would refuse before ONNX Runtime sees the model, as high findings: past the
 * size bounds (ONNX_LIMITS), or tensors whose memory passes the bound (`memory`, the defaults unless
 * raised) or has none (`onnxMemoryBound`: a small graph can ask ONNX Runtime for any size when it runs).
 */
function onnxRunFindings(bytes: Buffer, report: ScanReport, memory: OnnxMemoryOptions | undefined): void {
  const c = onnxCounts(bytes);
  const over = (['nodes', 'tensors', 'elements', 'int64'] as const).find((k) => c[k] > ONNX_LIMITS[k]);
  if (over !== undefined) {
    report.findings.push({
      severity: 'high',
      message: `more than ${ONNX_LIMITS[over]} ${over === 'int64' ? '64-bit integer values' : over}: decoders would build far more memory than the file holds, and Bulwark's commands refuse it`,
    });
    return;
  }
  try {
    onnxMemoryBound(bytes, 'the model', memory);
  } catch (e) {
    if (!(e instanceof BulwarkError && (e.code === 'ERR_MODEL_UNSAFE' || e.code === 'ERR_ONNX_INVALID')))
      throw e;
    report.findings.push({
      severity: 'high',
      message: `${e.message.replace(/^the model: /, '')} (a denial of service when it runs; Bulwark's commands refuse it)`,
    });
  }
}

async function scanOnnx(
  path: string,
  bytes: Buffer,
  report: ScanReport,
  memory: OnnxMemoryOptions | undefined,
): Promise<void> {
  const ext = externalTensors(bytes);
  onnxRunFindings(bytes, report, memory);
  const dir = resolve(dirname(path));
  let realDir = dir;
  try {
    realDir = await realpath(dir);
  } catch {
    // keep the lexical folder
  }
  for (const t of ext) {
    const why = pathEscapes(t.location, dir);
    if (why) {
      report.findings.push({
        severity: 'critical',
        message: `tensor "${t.tensor}" reads its data from ${JSON.stringify(t.location)}: ${why}`,
      });
      continue;
    }
    const full = resolve(dir, t.location);
    try {
      await lstat(full);
      const real = await realpath(full);
      if (real !== realDir && !real.startsWith(realDir + sep)) {
        report.findings.push({
          severity: 'critical',
          message: `tensor "${t.tensor}" reads ${JSON.stringify(t.location)}, a link to ${real} outside the model folder`,
        });
        continue;
      }
    } catch {
      report.findings.push({
        severity: 'medium',
        message: `tensor "${t.tensor}": external data file ${JSON.stringify(t.location)} is missing`,
      });
      continue;
    }
    // Safe for a runtime that opens the model from its path (the file stays inside its folder), but
    // Bulwark opens models from memory, where ONNX Runtime would resolve the name against the working
    // folder instead: every Bulwark command refuses such a model (assertOnnxOpenable, ERR_MODEL_UNSAFE).
    report.findings.push({
      severity: 'medium',
      message: `tensor "${t.tensor}" uses external data ${JSON.stringify(t.location)} inside the model folder: safe to load from its path, but Bulwark's commands refuse it (they open models from memory, where ONNX Runtime would read that name from the working folder); save the model with its data inside to use it here`,
    });
  }
}

function addPickle(report: ScanReport, r: WalkResult, what: string): void {
  report.imports.push(...r.imports);
  report.calls += r.calls;
  if (r.error !== undefined)
    report.findings.push({
      severity: 'info',
      message: `${what}: opcode walk stopped (${r.error}); imports before it are listed`,
    });
}

function pickleFindings(report: ScanReport, what: string): void {
  const dangerous = report.imports.filter((i) => i.severity === 'critical' || i.severity === 'high');
  report.findings.unshift({
    severity: dangerous.length > 0 ? 'critical' : 'high',
    message:
      dangerous.length > 0
        ? `${what} would import and may call ${[...new Set(dangerous.map((d) => `${d.module}.${d.name}`))].join(', ')} when loaded`
        : `${what} is pickle-based: loading it can run code (${report.imports.length} imports, ${report.calls} calls)`,
  });
}

/**
 * Scans a model file without loading it.
 *
 * @example
 * ```ts
 * const r = await scanModel('model.pt');
 * if (!r.safe) for (const i of r.imports) console.log(i.severity, `${i.module}.${i.name}`);
 * ```
 */
export async function scanModel(path: string, options: ScanOptions = {}): Promise<ScanReport> {
  const bytes = await readInputFile(path, 'model file');
  const report: ScanReport = { path, format: 'unknown', safe: false, imports: [], calls: 0, findings: [] };
  const name = basename(path);
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0x04034b50) {
    let entries: ZipEntry[];
    try {
      entries = zipEntries(bytes);
    } catch (e) {
      throw new BulwarkError(
        'ERR_FORMAT_UNSUPPORTED',
        `${path}: a damaged zip archive (${(e as Error).message})`,
      );
    }
    const pickles = entries.filter((e) => /\.pkl$/i.test(e.name) || /(^|\/)data$/.test(e.name));
    report.format = entries.some((e) => /(^|\/)data\.pkl$/.test(e.name)) ? 'pytorch-zip' : 'zip';
    for (const e of pickles) {
      let data: Buffer;
      try {
        data = zipRead(bytes, e);
      } catch (err) {
        report.findings.push({
          severity: 'medium',
          message: `${e.name}: not read (${(err as Error).message})`,
        });
        continue;
      }
      if (!looksLikePickle(data) && !/\.pkl$/i.test(e.name)) continue;
      addPickle(report, walkPickles(data, e.name), e.name);
    }
    if (pickles.length > 0) pickleFindings(report, `${name} (${report.format})`);
    else
      report.findings.push({
        severity: 'high',
        message: `${name}: a zip archive that is not a model format Bulwark reads`,
      });
    report.safe = false;
    return report;
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    // gzip: joblib's compressed dumps (and .pkl.gz)
    let inner: Buffer;
    try {
      inner = gunzipSync(bytes, { maxOutputLength: 1 << 30 });
    } catch (e) {
      throw new BulwarkError(
        'ERR_FORMAT_UNSUPPORTED',
        `${path}: a damaged gzip file (${(e as Error).message})`,
      );
    }
    report.format = /joblib/i.test(name) ? 'joblib' : 'pickle';
    addPickle(report, walkPickles(inner), name);
    pickleFindings(report, `${name} (gzip-compressed pickle)`);
    return report;
  }
  if (
    bytes.length >= 2 &&
    bytes[0] === 0x78 &&
    [0x01, 0x5e, 0x9c, 0xda].includes(bytes[1]!) &&
    /joblib|pkl/i.test(name)
  ) {
    report.format = 'joblib';
    try {
      addPickle(report, walkPickles(inflateSync(bytes, { maxOutputLength: 1 << 30 })), name);
    } catch {
      report.findings.push({ severity: 'info', message: `${name}: zlib stream not readable` });
    }
    pickleFindings(report, `${name} (zlib-compressed joblib)`);
    return report;
  }
  if (looksLikePickle(bytes) || (PICKLE_EXT.test(name) && bytes[0] === 0x80)) {
    const r = walkPickles(bytes);
    // Legacy torch.save: a magic-number pickle, protocol, sys info, then the model's pickle.
    report.format = /\.(pt|pth|ckpt)$/i.test(name)
      ? 'pytorch-legacy'
      : /joblib/i.test(name)
        ? 'joblib'
        : 'pickle';
    addPickle(report, r, name);
    pickleFindings(report, `${name} (${report.format})`);
    return report;
  }
  if (bytes.length >= 10) {
    const hl = bytes.readBigUInt64LE(0);
    if (hl > 1n && hl < BigInt(Math.min(bytes.length, 100 << 20)) && bytes[8] === 0x7b) {
      try {
        JSON.parse(bytes.subarray(8, 8 + Number(hl)).toString('utf8'));
        report.format = 'safetensors';
        report.safe = true;
        report.findings.push({ severity: 'info', message: `${name}: safetensors (no code runs on load)` });
        return report;
      } catch {
        // not safetensors
      }
    }
  }
  try {
    await scanOnnx(path, bytes, report, options.memory);
    report.format = 'onnx';
    report.safe = !report.findings.some((f) => f.severity === 'critical' || f.severity === 'high');
    return report;
  } catch (e) {
    if (!(e instanceof BulwarkError && e.code === 'ERR_ONNX_INVALID')) throw e;
  }
  if (PICKLE_EXT.test(name)) {
    report.format = 'pickle';
    addPickle(report, walkPickles(bytes), name);
    pickleFindings(report, name);
    return report;
  }
  throw new BulwarkError(
    'ERR_FORMAT_UNSUPPORTED',
    `${path}: not a model format Bulwark recognises (ONNX, safetensors, pickle, PyTorch, joblib)`,
  );
}

/** Scans and throws ERR_MODEL_UNSAFE unless the model is safe to load. */
export async function assertModelSafe(path: string, options: ScanOptions = {}): Promise<ScanReport> {
  const r = await scanModel(path, options);
  if (!r.safe) {
    const first = r.findings.find((f) => f.severity === 'critical' || f.severity === 'high') ?? r.findings[0];
    throw new BulwarkError(
      'ERR_MODEL_UNSAFE',
      `${path}: refused: ${first?.message ?? 'unsafe model format'}`,
      {
        details: {
          format: r.format,
          imports: r.imports
            .filter((i) => i.severity !== 'info')
            .map((i) => `${i.module}.${i.name}`)
            .join(', '),
        },
      },
    );
  }
  return r;
}
