// The native addon under valgrind memcheck (scripts/valgrind-native.sh):
// slab mapping, UCX tag transfers over tcp and shared memory, a cancelled
// receive, the CUDA-unavailable path and a clean close, with no memory error
// and no definite leak beyond native/ucx-cuda/valgrind.supp.
import { expect } from "chai";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../scripts/valgrind-native.sh", import.meta.url));

describe("native addon under valgrind memcheck", function () {
  this.timeout(300_000);

  it("runs the native smoke test with no memory errors or definite leaks (tcp and shm)", async function () {
    if (spawnSync("valgrind", ["--version"]).status !== 0) {
      console.log("      skipping: valgrind is not installed on this machine (apt-get install valgrind)");
      this.skip();
    }
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn("bash", [script], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      child.once("error", reject);
      child.once("exit", (c) => resolve({ code: c, output }));
    });
    const summaries = output.split("\n").filter((l) => /ERROR SUMMARY|definitely lost/.test(l));
    console.log(summaries.map((l) => `      ${l.replace(/^==\d+== /, "")}`).join("\n"));
    expect(code, output.slice(-6000)).to.equal(0);
    expect(output).to.contain("valgrind-native: passed");
    expect(summaries.filter((l) => /ERROR SUMMARY: 0 errors/.test(l)).length).to.equal(2);
  });
});
