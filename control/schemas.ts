import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { BadMessageError } from "../core/errors.js";
import { packageRoot } from "../native/ucx-cuda/loader.js";

let validators: Map<string, ValidateFunction> | undefined;

/** Folder of the wire contract. */
export function schemaDir(): string {
  return join(packageRoot(), "schemas");
}

function compileAll(): Map<string, ValidateFunction> {
  const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
  // CBOR byte strings have no JSON type: `"cborType": "bytes"` says a field is one.
  ajv.addKeyword({
    keyword: "cborType",
    schemaType: "string",
    validate: (kind: string, data: unknown) => kind === "bytes" && data instanceof Uint8Array,
    errors: false,
  });
  const out = new Map<string, ValidateFunction>();
  for (const file of readdirSync(schemaDir())) {
    if (!file.endsWith(".json")) continue;
    const schema = JSON.parse(readFileSync(join(schemaDir(), file), "utf8"));
    out.set(file.slice(0, -".json".length), ajv.compile(schema));
  }
  return out;
}

/** Names of every message kind with a schema. */
export function schemaNames(): string[] {
  validators ??= compileAll();
  return [...validators.keys()];
}

/**
 * Checks a decoded message against the schema `kind`.
 * @throws BadMessageError naming the first problem
 */
export function validate<T>(kind: string, message: unknown): T {
  validators ??= compileAll();
  const check = validators.get(kind);
  if (!check) throw new BadMessageError(`no schema for message kind ${kind}`);
  if (!check(message)) {
    const e = check.errors?.[0];
    const where = e?.instancePath ? e.instancePath : "message";
    throw new BadMessageError(`invalid ${kind}: ${where} ${e?.message ?? "does not match the schema"}`);
  }
  return message as T;
}
