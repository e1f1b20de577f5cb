import { expect } from "chai";
import * as errors from "../core/errors.js";
import { ErrorCode, SidecarError, errorFromWire } from "../core/errors.js";

// Every error class, found by its code, so a new class without a wire case fails here.
const classes = (Object.values(errors) as unknown[]).filter(
  (v) => typeof v === "function" && (v as { prototype: unknown }).prototype instanceof SidecarError,
);

describe("errors: wire round trip", () => {
  it("has one error class per code", () => {
    expect(classes.length).to.equal(Object.keys(ErrorCode).length);
  });

  for (const code of Object.values(ErrorCode)) {
    it(`rebuilds ${code} as the same class with the same message`, () => {
      const wire = { code, message: `something "x" at nats://127.0.0.1:4222: went wrong`, requested: 10, capacity: 5 };
      const e = errorFromWire(wire);
      expect(e).to.be.instanceOf(SidecarError);
      expect(e.code).to.equal(code);
      expect(e.message).to.equal(wire.message);
      expect(e.name).to.not.equal("SidecarError");
    });
  }
});
