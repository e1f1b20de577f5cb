// The UCX scenarios, run by ucx.test.ts in a child process per transport
// configuration (UCX reads UCX_TLS and friends when a context is created).
// Real UCX, two workers in one process plus a peer process.
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { AbortedError, UcxError } from "../../core/errors.js";
import { SlabMapping, UcxEndpoint, UcxWorker, ucxVersion } from "../../native/ucx-cuda/index.js";
import { TAG_FROM_PEER, TAG_TO_PEER, fillPattern, sameBytes, toHex } from "./ucx-helpers.js";

const MiB = 1 << 20;
const transports = process.env.UCX_TLS ?? "(UCX default)";

async function expectRejects<E extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(cls);
    return err as E;
  }
  throw new Error(`expected a ${cls.name}, but the promise resolved`);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (hang)`)), ms);
    }),
  ]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`UCX tag transfers over ${transports}`, () => {
  let a: UcxWorker;
  let b: UcxWorker;
  let ep: UcxEndpoint;
  const slabPath = `/dev/shm/sidecar-test-ucx-${process.pid}.slab`;
  let slab: SlabMapping;

  before(() => {
    a = UcxWorker.create({ name: "test-a" });
    b = UcxWorker.create({ name: "test-b" });
    ep = a.connect(b.address);
    slab = SlabMapping.open(slabPath, 64 * MiB + 2 * 4096);
    b.registerMemory(slab);
  });

  after(async () => {
    await ep?.close();
    await a?.close();
    await b?.close();
    slab?.close();
    SlabMapping.unlink(slabPath);
  });

  it("reports the UCX version and distinct, non-empty worker addresses", () => {
    expect(ucxVersion()).to.match(/^\d+\.\d+/);
    expect(a.address.length).to.be.greaterThan(0);
    expect(toHex(a.address)).to.not.equal(toHex(b.address));
    expect(a.isClosed).to.equal(false);
  });

  it("sends 1 MiB (+3 bytes) byte-exact into a plain buffer", async () => {
    const src = fillPattern(new Uint8Array(MiB + 3), 1);
    const dst = new Uint8Array(MiB + 3);
    const got = b.recv(11n, dst);
    await ep.send(11n, src);
    expect(await got).to.deep.equal({ length: MiB + 3, senderTag: 11n });
    expect(sameBytes(src, dst)).to.equal(true);
  });

  for (const where of ["a view of the registered slab", "a plain buffer"]) {
    it(`sends 64 MiB byte-exact into ${where}`, async () => {
      const src = fillPattern(new Uint8Array(64 * MiB), 2);
      const dst = where.includes("slab") ? new Uint8Array(slab.buffer, 4096, 64 * MiB) : new Uint8Array(64 * MiB);
      const t0 = performance.now();
      const got = b.recv(12n, dst);
      await ep.send(12n, src);
      const { length } = await got;
      const ms = performance.now() - t0;
      expect(length).to.equal(64 * MiB);
      expect(sameBytes(src, dst)).to.equal(true);
      console.log(`      64 MiB over ${transports} into ${where}: ${ms.toFixed(1)} ms, ${(64 * MiB / ms / 1e6).toFixed(2)} GB/s`);
    });
  }

  it("matches several concurrent transfers by their distinct tags", async () => {
    const n = 8;
    const srcs = Array.from({ length: n }, (_, i) => fillPattern(new Uint8Array(256 * 1024 + i), 100 + i));
    const dsts = srcs.map((s) => new Uint8Array(s.length));
    // Post the recvs in reverse order, send in order, all at once.
    const recvs = srcs.map((_, i) => n - 1 - i).map((i) => b.recv(BigInt(1000 + i), dsts[i]!).then((r) => ({ i, r })));
    await Promise.all(srcs.map((s, i) => ep.send(BigInt(1000 + i), s)));
    for (const { i, r } of await Promise.all(recvs)) {
      expect(r).to.deep.equal({ length: srcs[i]!.length, senderTag: BigInt(1000 + i) });
      expect(sameBytes(srcs[i]!, dsts[i]!), `transfer ${i}`).to.equal(true);
    }
  });

  it("receives when the recv is posted after the send (unexpected message), small and large", async () => {
    for (const size of [64, 4 * MiB]) {
      const src = fillPattern(new Uint8Array(size), 3);
      const dst = new Uint8Array(size);
      const sent = ep.send(13n, src);
      await sleep(30); // the message arrives before any recv is posted
      const got = await b.recv(13n, dst);
      await sent;
      expect(got.length).to.equal(size);
      expect(sameBytes(src, dst)).to.equal(true);
    }
  });

  it("matches with a tag mask and reports the sender's tag", async () => {
    const dst = new Uint8Array(16);
    const got = b.recv(0xabcd_0000n, dst, { tagMask: 0xffff_0000n });
    await ep.send(0xabcd_1234n, fillPattern(new Uint8Array(16), 4));
    expect((await got).senderTag).to.equal(0xabcd_1234n);
  });

  it("rejects a message larger than the buffer with UCS_ERR_MESSAGE_TRUNCATED", async () => {
    const got = b.recv(14n, new Uint8Array(8));
    const sent = ep.send(14n, new Uint8Array(1024)).catch(() => undefined); // the sender may or may not be told
    const err = await expectRejects(got, UcxError);
    expect(err.status).to.equal("UCS_ERR_MESSAGE_TRUNCATED");
    expect(err.code).to.equal("SC_UCX");
    await sent;
  });

  it("aborts a pending recv with AbortedError, and the cancelled recv takes no message", async () => {
    const ac = new AbortController();
    const pending = b.recv(15n, new Uint8Array(64), { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expectRejects(withTimeout(pending, 5000, "aborted recv"), AbortedError);
    // The next message with that tag goes to a new recv.
    const dst = new Uint8Array(64);
    const next = b.recv(15n, dst);
    await ep.send(15n, fillPattern(new Uint8Array(64), 5));
    expect((await withTimeout(next, 5000, "recv after abort")).length).to.equal(64);
    // An already-aborted signal never posts.
    await expectRejects(b.recv(15n, dst, { signal: AbortSignal.abort() }), AbortedError);
  });

  it("fails with UcxError, not a hang or crash, when connecting to a closed worker", async function () {
    const c = UcxWorker.create({ name: "test-closed" });
    const address = c.address;
    await c.close();
    const outcome = (async () => {
      let e: UcxEndpoint;
      try {
        e = a.connect(address);
      } catch (err) {
        return err; // refused at connect
      }
      const failed = new Promise<UcxError>((resolve) => {
        // either the send rejects or onError fires; both must be UcxError
        e.send(16n, new Uint8Array(MiB)).then(
          () => resolve(new UcxError("send to a closed worker resolved", "UCS_OK")),
          resolve,
        );
      });
      const err = await failed;
      await e.close();
      return err;
    })();
    const err = await withTimeout(outcome, 30000, "endpoint to a closed worker");
    expect(err).to.be.instanceOf(UcxError);
    expect((err as UcxError).status).to.match(/^UCS_ERR_/);
  });

  it("closes idempotently; pending recvs reject with UcxError; later calls fail with UcxError", async () => {
    const c = UcxWorker.create({ name: "test-close" });
    const d = UcxWorker.create({ name: "test-close-peer" });
    const e = c.connect(d.address);
    const taken = d.recv(17n, new Uint8Array(8));
    await e.send(17n, new Uint8Array(8));
    await taken;
    await e.close();
    await e.close();
    expect(e.isClosed).to.equal(true);
    await expectRejects(e.send(17n, new Uint8Array(8)), UcxError);

    const pending = d.recv(18n, new Uint8Array(8));
    const e2 = d.connect(c.address);
    await Promise.all([d.close(), d.close()]);
    await d.close();
    expect(d.isClosed).to.equal(true);
    expect(e2.isClosed).to.equal(true);
    const err = await expectRejects(pending, UcxError);
    expect(err.status).to.equal("UCS_ERR_CANCELED");
    await expectRejects(d.recv(18n, new Uint8Array(8)), UcxError);
    expect(() => d.connect(c.address)).to.throw(UcxError);
    await c.close();
  });

  describe("across two processes", () => {
    const peerScript = fileURLToPath(new URL("./ucx-peer.ts", import.meta.url));
    let child: ChildProcess | undefined;
    afterEach(() => {
      if (child && child.exitCode === null) child.kill("SIGKILL");
    });

    function startPeer(args: string[]): { lines: AsyncIterableIterator<string>; exited: Promise<number | null> } {
      child = spawn(process.execPath, ["--import", "tsx", peerScript, ...args], { stdio: ["pipe", "pipe", "inherit"], env: process.env });
      const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
      return { lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), exited };
    }

    // The next protocol line; UCX logs to stdout too, so skip its lines.
    async function nextLine(lines: AsyncIterableIterator<string>): Promise<string> {
      for (;;) {
        const r = await withTimeout(lines.next(), 30000, "peer process output");
        if (r.done) throw new Error("peer process ended early");
        if (/^(ADDR |DONE$|RECEIVED$)/.test(r.value)) return r.value;
      }
    }

    it("echoes 8 MiB byte-exact through a peer process", async () => {
      const size = 8 * MiB + 5;
      const { lines, exited } = startPeer(["echo", String(size)]);
      const addr = (await nextLine(lines)).replace(/^ADDR /, "");
      child!.stdin!.write(`${toHex(a.address)}\n`);
      const peer = a.connect(new Uint8Array(Buffer.from(addr, "hex")));
      const src = fillPattern(new Uint8Array(size), 6);
      const back = new Uint8Array(size);
      const got = a.recv(TAG_FROM_PEER, back);
      await peer.send(TAG_TO_PEER, src);
      expect((await withTimeout(got, 30000, "echo")).length).to.equal(size);
      expect(sameBytes(src, back)).to.equal(true);
      expect(await nextLine(lines)).to.equal("DONE");
      expect(await exited).to.equal(0);
      await peer.close();
    });

    it("reports a killed peer through onError and rejects sends with UcxError", async function () {
      const { lines } = startPeer(["hold", "64"]);
      const addr = (await nextLine(lines)).replace(/^ADDR /, "");
      child!.stdin!.write(`${toHex(a.address)}\n`);
      let reported: UcxError | undefined;
      const peer = a.connect(new Uint8Array(Buffer.from(addr, "hex")), (err) => {
        reported = err;
      });
      if (!peer.peerErrorHandling) {
        await peer.close();
        console.log(`      (skipped: no transport in ${transports} reports peer failures in UCX ${ucxVersion()})`);
        this.skip();
      }
      await peer.send(TAG_TO_PEER, new Uint8Array(64));
      expect(await nextLine(lines)).to.equal("RECEIVED");
      child!.kill("SIGKILL");
      await new Promise((r) => child!.once("exit", r));
      const err = await withTimeout(
        (async () => {
          for (;;) {
            try {
              await peer.send(TAG_TO_PEER, new Uint8Array(MiB));
            } catch (e) {
              return e;
            }
            await sleep(50);
          }
        })(),
        30000,
        "send to a killed peer",
      );
      expect(err).to.be.instanceOf(UcxError);
      await withTimeout((async () => { while (!reported) await sleep(10); })(), 10000, "onError");
      expect(reported).to.be.instanceOf(UcxError);
      expect(peer.error).to.equal(reported);
      await peer.close();
    });
  });
});
