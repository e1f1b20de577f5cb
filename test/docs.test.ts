// The README must agree with the code: its error table with ErrorCode, its
// environment table with the variables server/config.ts reads, its links
// with the files in schemas/.
import { expect } from "chai";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ErrorCode } from "../core/errors.js";

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const readme = readFileSync(root("README.md"), "utf8");

/** The lines of the README section under `## <title>`, up to the next `## `. */
function section(title: string): string {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.trim() === `## ${title}`);
  if (start < 0) throw new Error(`README has no "## ${title}" section`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith("## "));
  return lines.slice(start + 1, end < 0 ? undefined : end).join("\n");
}

/** First-column values of every table row in `text` that start with a backquoted name. */
function firstColumn(text: string, pattern: RegExp): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\|\s*`([^`]+)`/.exec(line.trim());
    if (m && pattern.test(m[1]!)) out.push(m[1]!);
  }
  return out;
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

describe("README agrees with the code", () => {
  it("lists every ErrorCode in its error table, and nothing else", () => {
    const documented = firstColumn(section("Errors"), /^SC_[A-Z_]+$/);
    expect(documented.length, "error table rows").to.be.greaterThan(0);
    expect(new Set(documented).size, "a code listed twice").to.equal(documented.length);
    const codes = sorted(Object.values(ErrorCode));
    expect(sorted(documented).filter((c) => !codes.includes(c as never)), "codes in the README but not in ErrorCode").to.deep.equal([]);
    expect(codes.filter((c) => !documented.includes(c)), "ErrorCode codes missing from the README").to.deep.equal([]);
  });

  it("documents every SIDECAR_* variable server/config.ts reads", () => {
    const config = readFileSync(root("server/config.ts"), "utf8");
    const read = sorted([...config.matchAll(/\bSIDECAR_[A-Z0-9_]+\b/g)].map((m) => m[0]));
    expect(read.length, "variables found in server/config.ts").to.be.greaterThan(6);
    const rows = section("Environment variables")
      .split("\n")
      .filter((l) => l.trim().startsWith("|"))
      .map((l) => l.split("|")[1] ?? "");
    const documented = new Set(rows.flatMap((cell) => [...cell.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!)));
    expect(read.filter((v) => !documented.has(v)), "variables missing from the README's environment table").to.deep.equal([]);
  });

  it("documents the log level variable of core/logger.ts", () => {
    const logger = readFileSync(root("core/logger.ts"), "utf8");
    const vars = [...logger.matchAll(/process\.env\.([A-Z0-9_]+)/g)].map((m) => m[1]!);
    expect(vars.length).to.be.greaterThan(0);
    for (const v of vars) expect(section("Environment variables"), v).to.include(`\`${v}\``);
  });

  it("links every schema in schemas/", () => {
    const files = readdirSync(root("schemas")).filter((f) => f.endsWith(".json")).sort();
    expect(files.length).to.be.greaterThan(0);
    const linked = new Set([...readme.matchAll(/\]\((?:\.\/)?schemas\/([^)#\s]+\.json)\)/g)].map((m) => m[1]!));
    expect(files.filter((f) => !linked.has(f)), "schemas not linked from the README").to.deep.equal([]);
    expect([...linked].filter((f) => !files.includes(f)), "README links to schemas that do not exist").to.deep.equal([]);
  });
});
