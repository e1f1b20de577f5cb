/**
 * The `sidecar` command as an operator uses it: health (text, --json, exit
 * codes), watch (the xstate inspection stream), serve's clean stop on
 * SIGTERM, and the demo, each as a real process.
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { cliCommand } from "../cluster/localCluster.js";
import { MiB, TestCluster, nodeName, slabFile, specsOn, tensorOf, uid, waitFor } from "./integration/helpers.js";

function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { command, args: base } = cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...base, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("cli: sidecar health, watch, serve, demo", function () {
  this.timeout(120_000);
  let tc: TestCluster;
  const node = nodeName("cli");

  before(async () => {
    tc = await TestCluster.start(specsOn(node, [0, 1], 8 * MiB), { env: { SIDECAR_INSPECT: "true" } });
  });

  after(async () => {
    await tc?.stop();
  });

  it("health prints ALL_GOOD and exits 0; --json carries both slabs' usedBytes and totalBytes", async () => {
    await tc.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 8] } });
    const text = await runCli(["health", "0", "--nats-url", tc.url]);
    expect(text.stdout.trim()).to.equal("ALL_GOOD");
    expect(text.code).to.equal(0);
    const json = await runCli(["health", "0", "--json", "--nats-url", tc.url]);
    expect(json.code).to.equal(0);
    const h = JSON.parse(json.stdout) as { status: string; send: { usedBytes: number; totalBytes: number }; recv: { usedBytes: number; totalBytes: number } };
    expect(h.status).to.equal("ALL_GOOD");
    expect(h.send.totalBytes).to.be.greaterThan(0);
    expect(h.send.usedBytes).to.equal(0);
    expect(h.recv).to.include.keys("usedBytes", "totalBytes");
  });

  it("health exits non-zero with a one-line reason when the sidecar or NATS cannot be reached", async () => {
    const missing = await runCli(["health", "7", "--nats-url", tc.url, "--timeout", "1000"]);
    expect(missing.code).to.not.equal(0);
    expect(missing.stdout.trim().split("\n")).to.have.length(1);
    expect(missing.stdout).to.match(/^OFFLINE: no sidecar serves rank 7/);
    const noNats = await runCli(["health", "0", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1000"]);
    expect(noNats.code).to.not.equal(0);
    expect(noNats.stdout).to.match(/^OFFLINE: cannot reach NATS at nats:\/\/127\.0\.0\.1:1/);
  });

  it("watch prints each transfer's states from the inspection stream", async () => {
    const { command, args } = cliCommand();
    const watcher: ChildProcess = spawn(command, [...args, "watch", "--json", "--nats-url", tc.url], { stdio: ["ignore", "pipe", "pipe"] });
    let lines = "";
    watcher.stdout!.on("data", (d: Buffer) => (lines += d.toString()));
    let ready = "";
    watcher.stderr!.on("data", (d: Buffer) => (ready += d.toString()));
    try {
      await waitFor(() => ready.includes("watching"), "sidecar watch to subscribe");
      await new Promise((r) => setTimeout(r, 200));
      const tx = await tc.connect({ rank: 0, sendTensor: { dtype: "float32", shape: [-1, 8] } });
      const rx = await tc.connect({ rank: 1, recvTensor: { dtype: "float32", shape: [-1, 8] } });
      const id = uid("watched");
      await tx.send(tensorOf("float32", [4, 8]), { id, dstRanks: [[1]] });
      await rx.recv(id, 0, { timeoutMs: 10_000 });
      await rx.markDone(id, 0);
      const seen = () => lines.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { actor: string; state: unknown; status: string });
      await waitFor(() => seen().some((e) => e.actor.startsWith("send-") && e.state === "done") && seen().some((e) => e.actor.startsWith("recv-") && e.state === "released"),
        "the send actor to reach done and the receive actor released");
      const sendStates = new Set(seen().filter((e) => e.actor.startsWith("send-")).map((e) => String(e.state)));
      for (const s of ["staging", "announcing", "awaitingRelease", "done"]) expect(sendStates, `send states seen: ${[...sendStates]}`).to.include(s);
      const recvStates = new Set(seen().filter((e) => e.actor.startsWith("recv-")).map((e) => String(e.state)));
      for (const s of ["ready", "released"]) expect(recvStates, `receive states seen: ${[...recvStates]}`).to.include(s);
    } finally {
      watcher.kill("SIGTERM");
    }
  });

  it("serve stops cleanly on SIGTERM and the node's last sidecar removes its slab file", async () => {
    expect(existsSync(slabFile(node))).to.equal(true);
    await tc.cluster.stopSidecar(1);
    expect(existsSync(slabFile(node)), "rank 0 still maps it").to.equal(true);
    const rank0 = tc.cluster.sidecars.get(0)!.process;
    await tc.cluster.stopSidecar(0);
    expect(rank0.exitCode).to.equal(0);
    expect(existsSync(slabFile(node))).to.equal(false);
  });

  it("demo moves everything byte-exact, prints its summary and leaves nothing running", async () => {
    const r = await runCli(["demo", "--requests", "4"], {}, 100_000);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.contain("what moved");
    expect(r.stdout).to.contain("All data arrived byte-exact; every slab is empty again.");
    const pid = /demo-a-(\d+)/.exec(r.stdout)?.[1];
    expect(pid, "the demo names its nodes").to.be.a("string");
    expect(existsSync(`/dev/shm/sidecar-demo-a-${pid}.slab`)).to.equal(false);
    expect(existsSync(`/dev/shm/sidecar-demo-b-${pid}.slab`)).to.equal(false);
  });
});
