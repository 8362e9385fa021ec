/**
 * A JSON Schema (draft-07) validator for the keywords the chart's values.schema.json uses. A keyword it does not
 * know throws, so the schema cannot lean on a rule the tests would silently skip.
 *
 * @module
 */

type Schema = Readonly<Record<string, unknown>>;

const ANNOTATIONS = new Set(["$schema", "title", "description", "default", "examples"]);
const KEYWORDS = new Set([
  "type",
  "properties",
  "additionalProperties",
  "required",
  "items",
  "enum",
  "pattern",
  "minimum",
  "maximum",
  "minLength",
  "uniqueItems",
]);

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(v: unknown, type: string): boolean {
  const t = typeOf(v);
  return t === type || (type === "number" && t === "integer");
}

/**
 * Validates a value; returns one message per violation (`/path: what`), empty when valid.
 *
 * @throws {TypeError} When the schema uses a keyword this validator does not implement.
 */
export function validate(schema: Schema, value: unknown, path = ""): string[] {
  for (const k of Object.keys(schema)) {
    if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) throw new TypeError(`Cannot validate keyword '${k}' at '${path}'`);
  }
  const errors: string[] = [];
  const at = path === "" ? "/" : path;
  const type = schema["type"];
  if (type !== undefined) {
    const types = Array.isArray(type) ? type as string[] : [type as string];
    if (!types.some((t) => typeMatches(value, t))) {
      return [`${at}: expected ${types.join(" or ")}, found ${typeOf(value)}`];
    }
  }
  if (schema["enum"] !== undefined && !(schema["enum"] as unknown[]).includes(value)) {
    errors.push(`${at}: expected one of ${JSON.stringify(schema["enum"])}, found ${JSON.stringify(value)}`);
  }
  if (typeof value === "string") {
    if (schema["pattern"] !== undefined && !new RegExp(schema["pattern"] as string, "u").test(value)) {
      errors.push(`${at}: '${value}' does not match ${schema["pattern"]}`);
    }
    if (schema["minLength"] !== undefined && value.length < (schema["minLength"] as number)) {
      errors.push(`${at}: shorter than ${schema["minLength"]}`);
    }
  }
  if (typeof value === "number") {
    if (schema["minimum"] !== undefined && value < (schema["minimum"] as number)) {
      errors.push(`${at}: ${value} is less than ${schema["minimum"]}`);
    }
    if (schema["maximum"] !== undefined && value > (schema["maximum"] as number)) {
      errors.push(`${at}: ${value} is more than ${schema["maximum"]}`);
    }
  }
  if (Array.isArray(value)) {
    if (schema["items"] !== undefined) {
      value.forEach((v, i) => errors.push(...validate(schema["items"] as Schema, v, `${path}/${i}`)));
    }
    if (schema["uniqueItems"] === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) {
      errors.push(`${at}: items are not unique`);
    }
  }
  if (typeOf(value) === "object") {
    const obj = value as Record<string, unknown>;
    const props = (schema["properties"] ?? {}) as Record<string, Schema>;
    for (const r of (schema["required"] ?? []) as string[]) {
      if (!(r in obj)) errors.push(`${at}: missing required '${r}'`);
    }
    for (const [k, v] of Object.entries(obj)) {
      if (props[k] !== undefined) errors.push(...validate(props[k], v, `${path}/${k}`));
      else if (schema["additionalProperties"] === false) errors.push(`${at}: unknown property '${k}'`);
    }
  }
  return errors;
}
