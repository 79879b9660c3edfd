import { describe, expect, it } from "vitest";
import { makeLUT, MIN_CONTRAST, textContrast } from "../src/colors.js";
import { lutStyles } from "../src/views/text.js";

describe("text view token labels", () => {
  it.each([["magma", false], ["magma", true], ["viridis", false]])(
    "read on every colour of %s (reversed: %s) at >= 4.5:1", (name, reverse) => {
      const { fill, text } = lutStyles(makeLUT(name, { reverse }));
      let worst = Infinity;
      for (let k = 0; k < 256; k++) worst = Math.min(worst, textContrast(text[k], fill[k]));
      expect(worst).toBeGreaterThanOrEqual(MIN_CONTRAST);
    });
});
