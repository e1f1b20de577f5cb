// Asked by binding.gyp for compiler and linker flags of the optional
// dependencies: UCX through pkg-config. CUDA is loaded at run time with
// dlopen, so it needs no flags here beyond -ldl.
import { execFileSync } from "node:child_process";

const what = process.argv[2];

function pkgConfig(args) {
  try {
    return execFileSync("pkg-config", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

const ucxCflags = pkgConfig(["--cflags", "ucx"]);
const ucxLibs = pkgConfig(["--libs", "ucx"]);
if (ucxLibs === null) {
  process.stderr.write("sidecar native: pkg-config cannot find UCX; install it with `apt-get install libucx-dev` (Debian) and rebuild\n");
  process.exit(1);
}

if (what === "cflags") process.stdout.write(ucxCflags ?? "");
else if (what === "libs") process.stdout.write(`${ucxLibs} -ldl`);
else if (what === "ldflags") process.stdout.write("");
else {
  process.stderr.write(`find-deps: unknown request ${what}\n`);
  process.exit(2);
}
