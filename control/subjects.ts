/**
 * Every control message travels on `sidecar.v1.<rank>.<kind>`: the version
 * is part of the subject, so a v2 server can run beside v1 clients, and the
 * rank routes it to one sidecar. `<kind>` is also the name of the message's
 * JSON Schema in `schemas/`.
 */
export const WIRE_VERSION = "v1";

export const Kind = {
  register: "client.register",
  sendBegin: "client.send.begin",
  sendCommit: "client.send.commit",
  sendStaged: "client.send.staged",
  sendObject: "client.send.object",
  close: "client.close",
  recv: "client.recv",
  recvCancel: "client.recv.cancel",
  done: "client.done",
  health: "health",
  hello: "peer.hello",
  announce: "peer.announce",
  received: "peer.received",
  release: "peer.release",
  peerClose: "peer.close",
  peerAbort: "peer.abort",
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Reply schema of each request kind. */
export const ReplyKind: Record<Kind, string> = {
  [Kind.register]: "client.register.reply",
  [Kind.sendBegin]: "client.send.begin.reply",
  [Kind.sendCommit]: "ok.reply",
  [Kind.sendStaged]: "ok.reply",
  [Kind.sendObject]: "ok.reply",
  [Kind.close]: "ok.reply",
  [Kind.recv]: "client.recv.reply",
  [Kind.recvCancel]: "ok.reply",
  [Kind.done]: "ok.reply",
  [Kind.health]: "health.reply",
  [Kind.hello]: "peer.hello.reply",
  [Kind.announce]: "peer.announce.reply",
  [Kind.received]: "ok.reply",
  [Kind.release]: "ok.reply",
  [Kind.peerClose]: "ok.reply",
  [Kind.peerAbort]: "ok.reply",
};

export function subjectFor(rank: number, kind: Kind): string {
  return `sidecar.${WIRE_VERSION}.${rank}.${kind}`;
}

/** The inspection stream of one sidecar (transfer state changes, for `sidecar watch`). */
export function inspectSubject(rank: number | "*"): string {
  return `sidecar.${WIRE_VERSION}.${rank}.inspect`;
}
