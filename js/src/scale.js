// Colour scales for attention weights: linear, log, and linear without the first token.
// Pure: no DOM. Long prompts put almost all weight on token 0 (the attention sink); a linear scale
// then leaves everything else pale, so the page offers a log scale (four decades below the maximum)
// and a linear scale whose maximum ignores the first token (which then draws off the scale).

export const SCALES = ["linear", "log", "no_sink"];
export const LOG_DECADES = 4;

export const SCALE_LABELS = {
  linear: "linear",
  log: `log (${LOG_DECADES} decades)`,
  no_sink: "linear, first token off scale",
};

/**
 * Largest finite value of `data` (a typed array or array). With `skipFirst`, the first column is
 * left out: index 0 of a vector, or column 0 of a row-major matrix with `cols` columns.
 */
export function scaleMax(data, { skipFirst = false, cols = null } = {}) {
  let max = 0;
  const width = cols ?? data.length;
  for (let i = 0; i < data.length; i++) {
    if (skipFirst && i % width === 0) continue;
    const v = data[i];
    if (v > max && Number.isFinite(v)) max = v;
  }
  return max;
}

/**
 * A scale {kind, max, label, t(v) -> 0..1, ticks: [{value, t}]} for weights whose maximum is `max`.
 * Unknown kinds fall back to linear. A zero or missing max maps everything to 0.
 */
export function makeScale(kind, max) {
  const k = SCALES.includes(kind) ? kind : "linear";
  const top = max > 0 && Number.isFinite(max) ? max : 0;
  if (k === "log") {
    const floor = top * 10 ** -LOG_DECADES;
    const logFloor = Math.log10(floor);
    const t = (v) => (top > 0 && v > floor ? Math.min(1, (Math.log10(v) - logFloor) / LOG_DECADES) : 0);
    const ticks = [];
    for (let d = LOG_DECADES; d >= 0; d--) ticks.push({ value: top * 10 ** -d, t: (LOG_DECADES - d) / LOG_DECADES });
    return { kind: k, max: top, label: SCALE_LABELS.log, t, ticks };
  }
  const t = (v) => (top > 0 && v > 0 ? Math.min(1, v / top) : 0);
  const ticks = [0, 0.5, 1].map((f) => ({ value: f * top, t: f }));
  return { kind: k, max: top, label: SCALE_LABELS[k], t, ticks };
}

/** The scale of `kind` for `data` (vector or row-major matrix with `cols` columns). */
export function scaleFor(kind, data, cols = null) {
  return makeScale(kind, scaleMax(data, { skipFirst: kind === "no_sink", cols }));
}

/** LUT index 0..255 of value `v` on `scale`. */
export function scaleIndex(scale, v) {
  return Math.round(scale.t(v) * 255);
}

/** A short number for tick labels: 0.5, 0.012, 3e-5. */
export function formatTick(value) {
  if (value === 0) return "0";
  if (value >= 0.01) return String(Number(value.toPrecision(2)));
  return value.toExponential(0);
}
