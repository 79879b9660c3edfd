// Wire arrays -> typed arrays.
//
// Python sends an array as {buffer, dtype, shape} (C order, little-endian).
// In a notebook `buffer` arrives as a DataView whose byteOffset may not be a
// multiple of the element size; typed arrays cannot view such memory, so the
// bytes are copied first. float16 is widened to Float32Array.

const ITEM_TYPES = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

const ITEM_SIZES = { ...Object.fromEntries(
  Object.entries(ITEM_TYPES).map(([name, type]) => [name, type.BYTES_PER_ELEMENT]),
), float16: 2 };

export const DTYPES = Object.keys(ITEM_SIZES);

/** True when `value` looks like a wire array dict. */
export function isWireArray(value) {
  return value != null && typeof value === "object" && "buffer" in value &&
    "dtype" in value && "shape" in value;
}

/** Bytes of any buffer-like as {buffer: ArrayBuffer, byteOffset, byteLength}. */
function bytesOf(buffer) {
  if (buffer instanceof ArrayBuffer) {
    return { buffer, byteOffset: 0, byteLength: buffer.byteLength };
  }
  if (ArrayBuffer.isView(buffer)) {
    return { buffer: buffer.buffer, byteOffset: buffer.byteOffset, byteLength: buffer.byteLength };
  }
  throw new TypeError(
    `wire array buffer: expected a DataView, ArrayBuffer or typed array, got ${typeof buffer}; ` +
    "send numpy arrays as bytes (array.tobytes()).",
  );
}

/** Number of elements of a shape (1 for a scalar shape []). */
export function sizeOf(shape) {
  let size = 1;
  for (const dim of shape) size *= dim;
  return size;
}

/** IEEE 754 half -> number (bits is a uint16). */
export function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Uint16Array of half bits -> Float32Array (uses Float16Array when present). */
export function decodeFloat16(bits, { useNative = true } = {}) {
  const Native = globalThis.Float16Array;
  if (useNative && typeof Native === "function") {
    return Float32Array.from(new Native(bits.buffer, bits.byteOffset, bits.length));
  }
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
  return out;
}

/**
 * Decode a wire dict into {data, shape, dtype}.
 * `data` is a typed array of the dtype (Float32Array for float16).
 * Options: {useNativeFloat16: false} forces the hand-written half decoder.
 */
export function decode(wire, { useNativeFloat16 = true } = {}) {
  if (!isWireArray(wire)) {
    throw new TypeError("wire array: expected {buffer, dtype, shape}, got " + JSON.stringify(
      wire && typeof wire === "object" ? Object.keys(wire) : wire,
    ));
  }
  const { dtype } = wire;
  const shape = Array.from(wire.shape, Number);
  const itemSize = ITEM_SIZES[dtype];
  if (!itemSize) {
    throw new TypeError(`wire array: unsupported dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(", ")}`);
  }
  const bytes = bytesOf(wire.buffer);
  const count = sizeOf(shape);
  if (count * itemSize !== bytes.byteLength) {
    throw new RangeError(
      `wire array: shape [${shape}] of ${dtype} needs ${count * itemSize} bytes, ` +
      `buffer has ${bytes.byteLength}; check that shape matches the bytes sent.`,
    );
  }
  let { buffer, byteOffset } = bytes;
  if (byteOffset % itemSize !== 0) {
    buffer = buffer.slice(byteOffset, byteOffset + bytes.byteLength);
    byteOffset = 0;
  }
  if (dtype === "float16") {
    const bits = new Uint16Array(buffer, byteOffset, count);
    return { data: decodeFloat16(bits, { useNative: useNativeFloat16 }), shape, dtype };
  }
  return { data: new ITEM_TYPES[dtype](buffer, byteOffset, count), shape, dtype };
}

/** decode() that passes null/undefined through (optional fields). */
export function decodeOptional(wire, options) {
  return wire == null ? null : decode(wire, options);
}

/** Weight in 0..1 of element i: uint8 is scaled by 1/255, floats used as is. */
export function weightAt(array, index) {
  const value = array.data[index];
  return array.dtype === "uint8" ? value / 255 : value;
}
