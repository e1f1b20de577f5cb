// Runs the UCX scenarios (ucx-scenarios.ts) once per transport
// configuration, each in its own process: UCX reads UCX_TLS and
// UCX_NET_DEVICES when a context is created, and a crash in one
// configuration must not take the others down.
import { expect } from "chai";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const mochaBin = createRequire(import.meta.url).resolve("mocha/bin/mocha.js");

const configs: { label: string; env: Record<string, string | undefined> }[] = [
  { label: "UCX_TLS=tcp UCX_NET_DEVICES=lo", env: { UCX_TLS: "tcp", UCX_NET_DEVICES: "lo" } },
  { label: "UCX_TLS=shm,self", env: { UCX_TLS: "shm,self", UCX_NET_DEVICES: undefined } },
];

function runScenarios(env: Record<string, string | undefined>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [mochaBin, "--config", here("./mocharc.child.json"), here("./ucx-scenarios.ts")], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, output }));
  });
}

describe("native UCX (real UCX, one child process per transport configuration)", function () {
  this.timeout(240_000);
  for (const { label, env } of configs) {
    it(`passes every UCX scenario with ${label}`, async () => {
      const { code, output } = await runScenarios(env);
      // Show the child's own report, without UCX's log lines.
      const report = output
        .split("\n")
        .filter((l) => !/\bUCX {2}(ERROR|WARN)\b/.test(l))
        .map((l) => `    | ${l}`)
        .join("\n");
      process.stdout.write(`${report}\n`);
      const passing = Number(/(\d+) passing/.exec(output)?.[1] ?? 0);
      const failing = Number(/(\d+) failing/.exec(output)?.[1] ?? 0);
      expect(failing, output).to.equal(0);
      expect(code, output).to.equal(0);
      expect(passing, output).to.be.at.least(11);
    });
  }
});
