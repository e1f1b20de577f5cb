// After tsc: make the CLI executable and stamp the build (scripts/setup.sh rebuilds when sources are newer).
import { chmodSync, writeFileSync } from "node:fs";
chmodSync("dist/cli/main.js", 0o755);
writeFileSync("dist/.build-stamp", new Date().toISOString() + "\n");
