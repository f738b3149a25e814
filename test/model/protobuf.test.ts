import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBulwarkError } from '../../src/core/index.js';
import { protoFields, WT_I32, WT_I64, WT_LEN, WT_VARINT } from '../../src/model/protobuf.js';

/** int64 -1 as protobuf writes it: ten bytes, two's complement. */
const MINUS_ONE = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];

const invalid = (re: RegExp) => (e: unknown) => isBulwarkError(e, 'ERR_ONNX_INVALID') && re.test(e.message);

describe('protobuf wire reader shared by the ONNX walks', () => {
  it('reads varints signed (shapes, constants) or unsigned (counts, limits), and every wire type', () => {
    // field 1 varint -1; field 2 fixed64; field 3 fixed32; field 4 bytes "ab"; field 5 varint 300.
    const buf = Uint8Array.from([
      0x08,
      ...MINUS_ONE,
      0x11,
      ...[1, 2, 3, 4, 5, 6, 7, 8],
      0x1d,
      ...[9, 10, 11, 12],
      0x22,
      2,
      0x61,
      0x62,
      0x28,
      0xac,
      0x02,
    ]);
    const signed = [...protoFields(buf, { signed: true })];
    assert.deepEqual(
      signed.map((f) => [f.no, f.wt, f.int, [...f.bytes]]),
      [
        [1, WT_VARINT, -1, []],
        [2, WT_I64, 0, [1, 2, 3, 4, 5, 6, 7, 8]],
        [3, WT_I32, 0, [9, 10, 11, 12]],
        [4, WT_LEN, 0, [0x61, 0x62]],
        [5, WT_VARINT, 300, []],
      ],
    );
    const unsigned = [...protoFields(buf)];
    // 2^64 - 1 as a double: a huge positive value that every limit refuses.
    assert.equal(unsigned[0]?.int, 2 ** 64);
    assert.equal(unsigned[4]?.int, 300);
    // A value past 2^53 but below 2^63 keeps its sign and magnitude signed.
    const big = Uint8Array.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]); // 2^62
    assert.equal([...protoFields(big, { signed: true })][0]?.int, 2 ** 62);
  });

  it('refuses malformed bytes with ERR_ONNX_INVALID, never reading past the end', () => {
    const cases: [number[], RegExp][] = [
      [[0x08, 0x80], /truncated varint/],
      [[0x08, ...Array(11).fill(0x80), 0x01], /varint too long/],
      [[0x11, 1, 2, 3], /truncated fixed64/],
      [[0x1d, 1, 2], /truncated fixed32/],
      [[0x22, 5, 0x61], /length runs past the end/],
      [[0x00, 0x01], /field number 0/],
      [[0x0b], /unsupported wire type 3/],
    ];
    for (const [bytes, re] of cases)
      for (const signed of [false, true])
        assert.throws(() => [...protoFields(Uint8Array.from(bytes), { signed })], invalid(re), String(re));
    assert.throws(() => [...protoFields(new Uint8Array(0), { depth: 65 })], invalid(/nesting too deep/));
  });
});
