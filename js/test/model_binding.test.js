import { describe, expect, it } from "vitest";
import { modelBinding } from "../src/views/canvas.js";

/** A widget model stand-in that records what a view did to it. */
function fakeModel() {
  const handlers = new Map();
  const log = [];
  return {
    log,
    handlers,
    on(event, handler) { handlers.set(event, [...(handlers.get(event) ?? []), handler]); },
    off(event, handler) { handlers.set(event, (handlers.get(event) ?? []).filter((h) => h !== handler)); },
    set(name, value) { log.push(["set", name, value]); },
    save_changes() { log.push(["save"]); },
  };
}

describe("modelBinding", () => {
  it("saves several traits in one sync, in order", () => {
    const model = fakeModel();
    modelBinding(model).save({ layer: 2, head: null });
    expect(model.log).toEqual([["set", "layer", 2], ["set", "head", null], ["save"]]);
  });

  it("removes exactly what it subscribed, and only once", () => {
    const model = fakeModel();
    const other = () => {};
    model.on("change:layer", other); // someone else's handler stays
    const binding = modelBinding(model);
    const mine = () => {};
    binding.on("change:layer", mine);
    binding.on("change:head", mine);
    expect(model.handlers.get("change:layer")).toEqual([other, mine]);
    binding.removeAll();
    expect(model.handlers.get("change:layer")).toEqual([other]);
    expect(model.handlers.get("change:head")).toEqual([]);
    binding.removeAll(); // a second teardown is harmless
    expect(model.handlers.get("change:layer")).toEqual([other]);
  });
});
