// Second process for the IPC test: opens the handle (hex, argv[2]), copies
// argv[3] bytes to the host, prints their SHA-256, closes the handle.
import { createHash } from "node:crypto";
import { cuda } from "../../native/ucx-cuda/index.js";

const [hex, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const ptr = cuda.ipcOpenHandle(0, new Uint8Array(Buffer.from(hex!, "hex")));
const host = new Uint8Array(size);
await cuda.copyToHost(0, ptr, host);
cuda.ipcCloseHandle(0, ptr);
process.stdout.write(`${createHash("sha256").update(host).digest("hex")}\n`);
