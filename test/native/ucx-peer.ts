// The other process of the cross-process UCX tests. Prints `ADDR <hex>`,
// reads the parent's worker address (hex) from stdin, then:
//   echo <bytes>  receive one message (tag 0x100) and send it back (tag 0x200)
//   hold          receive one message (tag 0x100), print RECEIVED, wait to be killed
import { createInterface } from "node:readline";
import { UcxWorker } from "../../native/ucx-cuda/index.js";
import { TAG_FROM_PEER, TAG_TO_PEER, fromHex, toHex } from "./ucx-helpers.js";

const [mode, bytesArg] = process.argv.slice(2);
const bytes = Number(bytesArg ?? 0);
const worker = UcxWorker.create({ name: `peer-${process.pid}` });
process.stdout.write(`ADDR ${toHex(worker.address)}\n`);

const lines = createInterface({ input: process.stdin });
const parentHex = await new Promise<string>((resolve) => lines.once("line", resolve));
const ep = worker.connect(fromHex(parentHex));

const into = new Uint8Array(bytes);
const got = await worker.recv(TAG_TO_PEER, into);
if (mode === "echo") {
  await ep.send(TAG_FROM_PEER, into.subarray(0, got.length));
  await ep.close();
  await worker.close();
  lines.close();
  process.stdout.write("DONE\n");
} else {
  process.stdout.write("RECEIVED\n");
  setInterval(() => {}, 1000); // until killed
}
