import { fromPromise, setup } from "xstate";
import { InternalError } from "../core/errors.js";

/**
 * A sidecar server's life: `joining` (map the slab, connect to NATS,
 * subscribe) → `serving` → `draining` (stop transfers, unsubscribe) →
 * `stopped`. Health reads OFFLINE in every state but `serving`. The work of
 * joining and draining is done by actors the server provides.
 */
export const serverMachine = setup({
  types: {
    events: {} as { type: "STOP" },
    context: {} as { error: unknown },
  },
  actors: {
    join: fromPromise<void>(async () => {
      throw new InternalError("server actor \"join\" was not provided");
    }),
    drain: fromPromise<void>(async () => {
      throw new InternalError("server actor \"drain\" was not provided");
    }),
  },
}).createMachine({
  id: "server",
  context: { error: null },
  initial: "joining",
  states: {
    joining: {
      invoke: { src: "join", onDone: "serving", onError: { target: "stopped", actions: ({ context, event }) => void (context.error = event.error) } },
      on: { STOP: "draining" },
    },
    serving: { on: { STOP: "draining" } },
    draining: {
      invoke: { src: "drain", onDone: "stopped", onError: { target: "stopped", actions: ({ context, event }) => void (context.error = event.error) } },
    },
    stopped: { type: "final" },
  },
});
