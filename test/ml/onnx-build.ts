/**
 * Pieces of hand-built ONNX models for the tests of the graph walks and the memory bound (encoded by
 * src/ml/onnx/proto.ts's encodeModel): initializers and node attributes.
 */
import { AttrType, DataType } from '../../src/ml/onnx/proto.js';

/** An int64 initializer. */
export const ints = (name: string, v: number[], dims = [v.length]) => ({
  name,
  dims,
  dataType: DataType.INT64,
  int64Data: v,
});

/** A float32 initializer. */
export const floats = (name: string, v: number[], dims = [v.length]) => ({
  name,
  dims,
  dataType: DataType.FLOAT,
  floatData: v,
});

export const attrInt = (name: string, i: number) => ({ name, type: AttrType.INT, i });
export const attrInts = (name: string, v: number[]) => ({ name, type: AttrType.INTS, ints: v });
export const attrFloats = (name: string, v: number[]) => ({ name, type: AttrType.FLOATS, floats: v });
export const attrString = (name: string, v: string) => ({ name, type: AttrType.STRING, s: Buffer.from(v) });
