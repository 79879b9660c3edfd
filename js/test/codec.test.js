import { describe, expect, it } from "vitest";
import { decode, decodeFloat16, halfToFloat, isWireArray } from "../src/codec.js";

/** Bytes of a typed array placed at `offset` inside a bigger buffer, as a DataView. */
function unalignedView(typed, offset = 1) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  const host = new Uint8Array(bytes.length + offset + 3);
  host.set(bytes, offset);
  return new DataView(host.buffer, offset, bytes.length);
}

describe("decode", () => {
  it("views an aligned ArrayBuffer without copying", () => {
    const source = new Float32Array([0.5, 0.25, 1, 0]);
    const out = decode({ buffer: source.buffer, dtype: "float32", shape: [2, 2] });
    expect(out.data).toBeInstanceOf(Float32Array);
    expect(out.data.buffer).toBe(source.buffer);
    expect(Array.from(out.data)).toEqual([0.5, 0.25, 1, 0]);
    expect(out.shape).toEqual([2, 2]);
  });

  it("copies an unaligned DataView", () => {
    const source = new Float32Array([1.5, -2, 3.25]);
    const view = unalignedView(source, 1);
    expect(view.byteOffset % 4).toBe(1);
    const out = decode({ buffer: view, dtype: "float32", shape: [3] });
    expect(Array.from(out.data)).toEqual([1.5, -2, 3.25]);
    expect(out.data.byteOffset % 4).toBe(0);
  });

  it("decodes uint32 edges from an unaligned DataView", () => {
    const view = unalignedView(new Uint32Array([0, 1, 2, 3000000000]), 3);
    const out = decode({ buffer: view, dtype: "uint32", shape: [2, 2] });
    expect(Array.from(out.data)).toEqual([0, 1, 2, 3000000000]);
  });

  it("accepts a Uint8Array slice and uint8 without copying concerns", () => {
    const host = new Uint8Array([9, 1, 2, 3, 4, 9]);
    const out = decode({ buffer: host.subarray(1, 5), dtype: "uint8", shape: [4] });
    expect(Array.from(out.data)).toEqual([1, 2, 3, 4]);
  });

  it("rejects mismatched shapes and unknown dtypes with a clear message", () => {
    expect(() => decode({ buffer: new ArrayBuffer(8), dtype: "float32", shape: [3] })).toThrow(/needs 12 bytes, buffer has 8/);
    expect(() => decode({ buffer: new ArrayBuffer(8), dtype: "complex64", shape: [1] })).toThrow(/unsupported dtype/);
    expect(() => decode({ dtype: "uint8" })).toThrow(/expected \{buffer, dtype, shape\}/);
  });

  it("recognises wire dicts", () => {
    expect(isWireArray({ buffer: new ArrayBuffer(0), dtype: "uint8", shape: [0] })).toBe(true);
    expect(isWireArray(null)).toBe(false);
    expect(isWireArray({ dtype: "uint8", shape: [] })).toBe(false);
  });
});

describe("float16", () => {
  // 0, 1, -2, 0.5, 65504 (max), 2^-24 (min subnormal), inf, 0.333 (0x3555)
  const bits = new Uint16Array([0x0000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0x3555]);
  const expected = [0, 1, -2, 0.5, 65504, 2 ** -24, Infinity, 0.333251953125];

  it("decodes by hand", () => {
    expect(Array.from(bits, halfToFloat)).toEqual(expected);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Array.from(decodeFloat16(bits, { useNative: false }))).toEqual(expected);
  });

  it("decodes a wire float16 array from an unaligned DataView to Float32Array", () => {
    const out = decode({ buffer: unalignedView(bits, 1), dtype: "float16", shape: [2, 4] }, { useNativeFloat16: false });
    expect(out.data).toBeInstanceOf(Float32Array);
    expect(Array.from(out.data)).toEqual(expected);
    expect(out.shape).toEqual([2, 4]);
  });

  it("agrees with the native Float16Array when the runtime has one", () => {
    const native = decode({ buffer: bits, dtype: "float16", shape: [8] });
    expect(Array.from(native.data)).toEqual(expected);
  });
});
