import { expect } from "chai";
import { existsSync } from "node:fs";
import { SlabMapError } from "../../core/errors.js";
import { SlabMapping } from "../../native/ucx-cuda/index.js";

describe("native SlabMapping", () => {
  const path = `/dev/shm/sidecar-test-slab-${process.pid}.slab`;
  afterEach(() => {
    SlabMapping.unlink(path);
  });

  it("maps a file of the asked size, readable and writable", () => {
    const m = SlabMapping.open(path, 1 << 20);
    expect(m.size).to.equal(1 << 20);
    expect(m.buffer.byteLength).to.equal(1 << 20);
    const v = new Uint8Array(m.buffer);
    v[0] = 1;
    v[v.length - 1] = 255;
    expect(v[0]).to.equal(1);
    expect(v[v.length - 1]).to.equal(255);
    m.close();
  });

  it("shares memory between two mappings of the same file", () => {
    const a = SlabMapping.open(path, 64 * 1024);
    const b = SlabMapping.open(path, 64 * 1024, { populate: true });
    new Uint8Array(a.buffer, 4096, 16).fill(7);
    expect(Array.from(new Uint8Array(b.buffer, 4096, 16))).to.deep.equal(new Array(16).fill(7));
    new Uint8Array(b.buffer)[100] = 42;
    expect(new Uint8Array(a.buffer)[100]).to.equal(42);
    a.close();
    b.close();
  });

  it("close detaches the buffer so views read as empty, and is idempotent", () => {
    const m = SlabMapping.open(path, 8192);
    const view = new Uint8Array(m.buffer, 0, 8192);
    m.close();
    expect(m.isClosed).to.equal(true);
    expect(m.buffer.byteLength).to.equal(0);
    expect(view.length).to.equal(0);
    m.close();
  });

  it("unlink removes the file and reports whether it existed", () => {
    SlabMapping.open(path, 4096).close();
    expect(existsSync(path)).to.equal(true);
    expect(SlabMapping.unlink(path)).to.equal(true);
    expect(existsSync(path)).to.equal(false);
    expect(SlabMapping.unlink(path)).to.equal(false);
  });

  it("fails with SlabMapError on a path that cannot be opened", () => {
    expect(() => SlabMapping.open("/nonexistent-dir-for-sidecar/x.slab", 4096)).to.throw(SlabMapError, /cannot open slab file/);
  });
});
