// A colour bar: the LUT as a gradient with tick labels and the scale's name. Canvas only.

import { formatTick } from "../scale.js";
import { setFont } from "./canvas.js";

/**
 * Draw a colour bar for `scale` ({t, ticks, label}) with `lut` into `ctx`.
 * box: {x, y, width, height}; vertical when taller than wide (ticks on the right), else horizontal
 * (ticks below). `title` (optional) is written above the bar.
 */
export function drawColorBar(ctx, lut, scale, box, theme, title = null) {
  const { x, y, width, height } = box;
  const vertical = height > width;
  const steps = vertical ? Math.max(1, Math.round(height)) : Math.max(1, Math.round(width));
  for (let s = 0; s < steps; s++) {
    const t = s / Math.max(1, steps - 1);
    const k = Math.round(t * 255) * 4;
    ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
    if (vertical) ctx.fillRect(x, y + height - s - 1, width, 1);
    else ctx.fillRect(x + s, y, 1, height);
  }
  ctx.strokeStyle = theme.border;
  ctx.lineWidth = 1;
  ctx.strokeRect(x - 0.5, y - 0.5, width + 1, height + 1);
  setFont(ctx, 10, theme.fontFamily);
  ctx.fillStyle = theme.muted;
  for (const tick of scale.ticks) {
    const text = formatTick(tick.value);
    if (vertical) {
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      ctx.fillText(text, x + width + 4, y + height - tick.t * height);
    } else {
      ctx.textAlign = tick.t === 0 ? "left" : tick.t === 1 ? "right" : "center";
      ctx.textBaseline = "top";
      ctx.fillText(text, x + tick.t * width, y + height + 2);
    }
  }
  if (title) {
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(title, x, y - 3);
  }
}
