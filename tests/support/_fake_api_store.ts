/**
 * The fake API server's object store: objects keyed by type, namespace and name, ONE cluster-wide resourceVersion
 * counter (as etcd's revision), a bounded history of watch events, and the write verbs with the real server's
 * preconditions (409 on a stale resourceVersion, AlreadyExists, NotFound) and `managedFields` bookkeeping.
 *
 * A write that changes nothing (same content, same field ownership) is not stored and bumps nothing, as on the real
 * server; every other write bumps the counter and emits exactly one event.
 *
 * @module
 */

import {
  canonical,
  deletePath,
  fromFieldsV1,
  getPath,
  isObject,
  type Json,
  type JsonObject,
  leafPaths,
  mergePatch,
  pathKey,
  setPath,
  toFieldsV1,
} from "./_fake_api_fields.ts";
import { apiVersionOf, findType, qualifiedResource, type ResourceType } from "./_fake_api_resources.ts";
import { ApiError, badRequest, failureStatus, invalid } from "./_fake_api_status.ts";
import { validateObject } from "./_fake_api_validate.ts";

/** An object as stored: `apiVersion`, `kind`, `metadata` and whatever else its type has. */
export interface KubeObject extends JsonObject {
  /** `v1` or `group/version`. */
  apiVersion: string;
  /** The kind, e.g. `EndpointSlice`. */
  kind: string;
  /** `name`, `namespace`, `uid`, `resourceVersion`, `generation`, `creationTimestamp`, `labels`, `managedFields`... */
  metadata: JsonObject;
}

/** The type of a watch event that describes a change. */
export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** One change, as recorded in the history. */
export interface StoredEvent {
  readonly rv: number;
  readonly type: ResourceType;
  readonly change: ChangeType;
  /** The object after the change (for DELETED: the last state, carrying the deletion's resourceVersion). */
  readonly object: KubeObject;
  /** The object before the change (MODIFIED, DELETED). */
  readonly previous: KubeObject | undefined;
}

/** Who writes, for `managedFields`. */
export interface WriteContext {
  readonly manager: string;
}

interface ManagerEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time: string;
  paths: Map<string, string[]>;
}

const SYSTEM_META = ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "namespace"];
const GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789";

/** The store. All methods are synchronous: JavaScript's single thread makes every write atomic. */
export class ObjectStore {
  #objects = new Map<string, KubeObject>();
  #rv: number;
  #floor: number;
  #history: StoredEvent[] = [];
  #historySize: number;
  #listeners = new Set<(e: StoredEvent) => void>();

  constructor(options: { historySize?: number; initialResourceVersion?: number } = {}) {
    this.#historySize = options.historySize ?? 1000;
    this.#rv = options.initialResourceVersion ?? 1000;
    this.#floor = this.#rv;
  }

  /** The cluster-wide resourceVersion: that of the latest write. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** The oldest resourceVersion a watch can resume from; older ones get 410. */
  get floor(): number {
    return this.#floor;
  }

  /** Forgets the history: a watch or continue token from any resourceVersion before now gets 410. */
  expireHistory(): void {
    this.#history = [];
    this.#floor = this.#rv;
  }

  /** Calls `listener` synchronously after every write. Returns the unsubscribe function. */
  subscribe(listener: (e: StoredEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The changes of `type` after `rv`, oldest first. */
  since(type: ResourceType, rv: number): StoredEvent[] {
    if (rv < this.#floor) {
      throw new ApiError(failureStatus(410, "Expired", `too old resource version: ${rv} (${this.#floor})`));
    }
    return this.#history.filter((e) => e.rv > rv && e.type === type);
  }

  /** A copy of one object, or undefined. */
  get(type: ResourceType, namespace: string, name: string): KubeObject | undefined {
    const obj = this.#objects.get(key(type, namespace, name));
    return obj === undefined ? undefined : structuredClone(obj);
  }

  /** Copies of the objects of a type, in one namespace or all, in etcd key order (namespace, then name). */
  list(type: ResourceType, namespace?: string): KubeObject[] {
    const prefix = namespace === undefined ? `${qualifiedResource(type)}|` : key(type, namespace, "");
    return [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o));
  }

  /** POST: creates an object; 409 `AlreadyExists` if it exists. */
  create(type: ResourceType, namespace: string, body: Json, ctx: WriteContext): KubeObject {
    const obj = checkBody(type, body, { namespace });
    const meta = obj.metadata;
    if (typeof meta.resourceVersion === "string" && meta.resourceVersion !== "") {
      throw new ApiError(
        failureStatus(500, "InternalError", "resourceVersion should not be set on objects to be created"),
      );
    }
    if ((meta.name ?? "") === "" && typeof meta.generateName === "string" && meta.generateName !== "") {
      meta.name = meta.generateName +
        Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => GENERATE_CHARS[b % GENERATE_CHARS.length]).join(
          "",
        );
    }
    const name = typeof meta.name === "string" ? meta.name : "";
    if (this.#objects.has(key(type, namespace, name))) {
      throw notFoundOr(409, "AlreadyExists", type, name, "already exists");
    }
    return this.#insert(type, namespace, obj, ctx.manager, "Update");
  }

  /**
   * PUT: replaces an object; 409 `Conflict` on a stale `metadata.resourceVersion`. When absent: created if the type
   * allows create on update (as kube-apiserver does for Leases, Services, Events, whatever resourceVersion the body
   * names), else 404.
   */
  update(type: ResourceType, namespace: string, name: string, body: Json, ctx: WriteContext): KubeObject {
    return this.updateOrCreate(type, namespace, name, body, ctx).object;
  }

  /** {@linkcode update}, saying whether it created the object (the server answers 201 then). */
  updateOrCreate(
    type: ResourceType,
    namespace: string,
    name: string,
    body: Json,
    ctx: WriteContext,
  ): { object: KubeObject; created: boolean } {
    const next = checkBody(type, body, { namespace, name });
    const old = this.#objects.get(key(type, namespace, name));
    if (old === undefined && type.createOnUpdate) {
      return { object: this.#insert(type, namespace, next, ctx.manager, "Update"), created: true };
    }
    const existing = this.#existing(type, namespace, name);
    checkPreconditions(type, existing, next.metadata);
    return { object: this.#replace(type, existing, next, ctx.manager), created: false };
  }

  /** PATCH `application/merge-patch+json` (also used for strategic merge patch, without its list semantics). */
  mergePatch(type: ResourceType, namespace: string, name: string, patch: Json, ctx: WriteContext): KubeObject {
    const old = this.#existing(type, namespace, name);
    if (!isObject(patch)) badRequest("the body of the request was in an unknown format - expected a JSON object");
    checkPreconditions(type, old, isObject(patch.metadata) ? patch.metadata : {});
    const next = checkBody(type, mergePatch(old, patch), { namespace, name });
    return this.#replace(type, old, next, ctx.manager);
  }

  /**
   * PATCH `application/apply-patch+yaml` (server-side apply). Creates the object if absent. Fields this manager
   * applied before and leaves out now are removed unless another manager owns them; a field another manager owns
   * with a different value is a 409 conflict unless `force`.
   */
  apply(
    type: ResourceType,
    namespace: string,
    name: string,
    body: Json,
    ctx: WriteContext & { force: boolean },
  ): { object: KubeObject; created: boolean } {
    if (!isObject(body)) badRequest("the body of the request was in an unknown format - expected an object");
    if (typeof body.apiVersion !== "string" || typeof body.kind !== "string" || body.kind === "") {
      // Go's GroupVersionKind.String() of what the body named.
      const av = typeof body.apiVersion === "string" ? body.apiVersion : "";
      const kind = typeof body.kind === "string" ? body.kind : "";
      badRequest(`invalid object type: ${av.includes("/") ? av : `/${av}`}, Kind=${kind}`);
    }
    const applied = checkBody(type, body, { namespace, name });
    if (applied.metadata.managedFields !== undefined) badRequest("metadata.managedFields must be nil");
    const old = this.#objects.get(key(type, namespace, name));
    if (old === undefined) {
      return { object: this.#insert(type, namespace, applied, ctx.manager, "Apply"), created: true };
    }
    const uid = applied.metadata.uid;
    if (typeof uid === "string" && uid !== "" && uid !== old.metadata.uid) {
      // Apply merges metadata.uid like any field: a different one is an update of an immutable field, not a conflict.
      invalid(
        { kindName: type.kind, group: type.group, name },
        "metadata.uid",
        `Invalid value: "${uid}": field is immutable`,
      );
    }
    checkPreconditions(type, old, applied.metadata);
    const skipStatus = type.hasStatusSubresource;
    const appliedPaths = new Map(leafPaths(applied, { skipStatus }).map((p) => [pathKey(p), p]));
    const entries = readManagers(old);
    const mine = takeEntry(entries, ctx.manager, "Apply", type);
    const conflicts: { manager: string; operation: string; apiVersion: string; path: string[] }[] = [];
    for (const entry of entries) {
      if (entry === mine) continue;
      for (const [k, p] of appliedPaths) {
        if (entry.paths.has(k) && canonical(getPath(old, p)) !== canonical(getPath(applied, p))) {
          conflicts.push({ manager: entry.manager, operation: entry.operation, apiVersion: entry.apiVersion, path: p });
          if (ctx.force) entry.paths.delete(k);
        }
      }
    }
    if (conflicts.length > 0 && !ctx.force) throw applyConflict(conflicts);
    const next = structuredClone(old);
    for (const p of appliedPaths.values()) {
      const v = getPath(applied, p) ?? null;
      if (isObject(v) && Object.keys(v).length === 0 && getPath(next, p) !== undefined) continue;
      setPath(next, p, v);
    }
    for (const [k, p] of mine.paths) {
      if (!appliedPaths.has(k) && !entries.some((e) => e !== mine && e.paths.has(k))) deletePath(next, p);
    }
    mine.paths = appliedPaths;
    mine.time = nowSeconds();
    next.metadata.managedFields = writeManagers(entries);
    return { object: this.#commitReplace(type, old, next), created: false };
  }

  /** DELETE: removes an object; 404 if absent, 409 if a precondition does not hold. Returns the deleted object. */
  delete(
    type: ResourceType,
    namespace: string,
    name: string,
    preconditions: { uid?: string; resourceVersion?: string } = {},
  ): KubeObject {
    const old = this.#existing(type, namespace, name);
    const meta = old.metadata;
    if (preconditions.uid !== undefined && preconditions.uid !== meta.uid) {
      throw deletePreconditionFailed(type, name, "UID", preconditions.uid, meta.uid, "deleted and then recreated");
    }
    if (preconditions.resourceVersion !== undefined && preconditions.resourceVersion !== meta.resourceVersion) {
      const rv = meta.resourceVersion;
      throw deletePreconditionFailed(type, name, "ResourceVersion", preconditions.resourceVersion, rv, "modified");
    }
    this.#objects.delete(key(type, namespace, name));
    const gone = structuredClone(old);
    return this.#commit(type, "DELETED", gone, old);
  }

  /** Test control: creates or replaces an object, bypassing preconditions (not validation). */
  upsert(obj: JsonObject): KubeObject {
    const apiVersion = typeof obj.apiVersion === "string" ? obj.apiVersion : "";
    const kind = typeof obj.kind === "string" ? obj.kind : "";
    const type = findType(kind, apiVersion);
    if (type === undefined) {
      throw new TypeError(`Cannot upsert '${apiVersion} ${kind}': expected a type the fake API server serves`);
    }
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    const namespace = typeof meta.namespace === "string" ? meta.namespace : "default";
    const name = typeof meta.name === "string" ? meta.name : "";
    const body = structuredClone(obj);
    const ctx = { manager: "fake-apiserver-test" };
    if (!this.#objects.has(key(type, namespace, name))) return this.create(type, namespace, body, ctx);
    if (isObject(body.metadata)) delete body.metadata.resourceVersion;
    return this.update(type, namespace, name, body, ctx);
  }

  /** Test control: deletes an object if present. */
  remove(type: ResourceType, namespace: string, name: string): boolean {
    if (!this.#objects.has(key(type, namespace, name))) return false;
    this.delete(type, namespace, name);
    return true;
  }

  #existing(type: ResourceType, namespace: string, name: string): KubeObject {
    const old = this.#objects.get(key(type, namespace, name));
    if (old === undefined) throw notFoundOr(404, "NotFound", type, name, "not found");
    return old;
  }

  #insert(type: ResourceType, namespace: string, obj: KubeObject, manager: string, op: "Apply" | "Update") {
    const meta = obj.metadata;
    for (const f of SYSTEM_META) delete meta[f];
    if (type.hasStatusSubresource) delete obj.status;
    const next: KubeObject = {
      ...obj,
      apiVersion: apiVersionOf(type),
      kind: type.kind,
      metadata: {
        ...meta,
        namespace,
        uid: crypto.randomUUID(),
        resourceVersion: "",
        ...(type.hasGeneration ? { generation: 1 } : {}),
        creationTimestamp: nowSeconds(),
      },
    };
    validateObject(type, next);
    const paths = leafPaths(next, { skipStatus: type.hasStatusSubresource });
    withDefaults(type, next); // written by the server, owned by no manager
    const entry: ManagerEntry = {
      manager,
      operation: op,
      apiVersion: apiVersionOf(type),
      time: nowSeconds(),
      paths: new Map(paths.map((p) => [pathKey(p), p])),
    };
    next.metadata.managedFields = writeManagers([entry]);
    this.#objects.set(key(type, namespace, String(next.metadata.name)), next);
    return this.#commit(type, "ADDED", next, undefined);
  }

  /** An update (PUT or merge patch): the writer takes the fields it changed from other managers. */
  #replace(type: ResourceType, old: KubeObject, next: KubeObject, manager: string): KubeObject {
    const skipStatus = type.hasStatusSubresource;
    if (skipStatus) {
      if (old.status === undefined) delete next.status;
      else next.status = structuredClone(old.status);
    }
    const oldPaths = new Map(leafPaths(old, { skipStatus }).map((p) => [pathKey(p), p]));
    const newPaths = new Map(leafPaths(next, { skipStatus }).map((p) => [pathKey(p), p]));
    const changed = [...newPaths].filter(([k, p]) =>
      !oldPaths.has(k) || canonical(getPath(old, p)) !== canonical(getPath(next, p))
    );
    const removed = [...oldPaths.keys()].filter((k) => !newPaths.has(k));
    const entries = readManagers(old);
    const mine = changed.length > 0 ? takeEntry(entries, manager, "Update", type) : undefined;
    for (const entry of entries) {
      for (const k of removed) entry.paths.delete(k);
      if (entry === mine) continue;
      for (const [k] of changed) entry.paths.delete(k);
    }
    if (mine !== undefined) {
      for (const [k, p] of changed) mine.paths.set(k, p);
      mine.time = nowSeconds();
    }
    next.metadata.managedFields = writeManagers(entries);
    return this.#commitReplace(type, old, next);
  }

  #commitReplace(type: ResourceType, old: KubeObject, next: KubeObject): KubeObject {
    const meta = next.metadata;
    for (const f of ["uid", "creationTimestamp", "namespace", "name"]) meta[f] = old.metadata[f] ?? null;
    meta.resourceVersion = old.metadata.resourceVersion ?? "";
    if (type.hasGeneration) meta.generation = old.metadata.generation ?? 1;
    else delete meta.generation;
    next.apiVersion = old.apiVersion;
    next.kind = old.kind;
    withDefaults(type, next);
    validateObject(type, next, old);
    if (canonical(withoutVolatile(next)) === canonical(withoutVolatile(old))) return structuredClone(old);
    if (type.hasGeneration && canonical(specLike(next)) !== canonical(specLike(old))) {
      meta.generation = Number(meta.generation) + 1;
    }
    this.#objects.set(key(type, String(meta.namespace), String(meta.name)), next);
    return this.#commit(type, "MODIFIED", next, old);
  }

  #commit(type: ResourceType, change: ChangeType, obj: KubeObject, previous: KubeObject | undefined): KubeObject {
    this.#rv += 1;
    obj.metadata.resourceVersion = String(this.#rv);
    const event: StoredEvent = {
      rv: this.#rv,
      type,
      change,
      object: structuredClone(obj),
      previous: previous === undefined ? undefined : structuredClone(previous),
    };
    this.#history.push(event);
    while (this.#history.length > this.#historySize) {
      const dropped = this.#history.shift();
      if (dropped !== undefined) this.#floor = dropped.rv;
    }
    for (const listener of [...this.#listeners]) listener(event);
    return structuredClone(obj);
  }
}

/** Fields the real server always writes: a core Event's `eventTime` (a MicroTime without omitempty) as null. */
function withDefaults(type: ResourceType, obj: KubeObject): void {
  if (type.group === "" && type.kind === "Event" && !("eventTime" in obj)) obj.eventTime = null;
}

function key(type: ResourceType, namespace: string, name: string): string {
  return `${qualifiedResource(type)}|${namespace}/${name}`;
}

/** Checks kind, apiVersion, name and namespace of a request body against the URL; returns a copy to store. */
function checkBody(type: ResourceType, body: Json, url: { namespace: string; name?: string }): KubeObject {
  if (!isObject(body)) badRequest("the body of the request was in an unknown format - expected a JSON object");
  const apiVersion = body.apiVersion ?? apiVersionOf(type);
  const kind = body.kind ?? type.kind;
  if (apiVersion !== apiVersionOf(type) || kind !== type.kind) {
    badRequest(
      `the API version in the data (${apiVersion}) does not match the expected API version (${apiVersionOf(type)})`,
    );
  }
  const metadata = body.metadata ?? {};
  if (!isObject(metadata)) badRequest(`${type.kind} in version "${type.version}" cannot be handled: metadata`);
  const ns = metadata.namespace;
  if (ns !== undefined && ns !== null && ns !== "" && ns !== url.namespace) {
    badRequest("the namespace of the provided object does not match the namespace sent on the request");
  }
  if (url.name !== undefined) {
    if (metadata.name === undefined || metadata.name === null || metadata.name === "") metadata.name = url.name;
    if (metadata.name !== url.name) {
      badRequest(`the name of the object (${metadata.name}) does not match the name on the URL (${url.name})`);
    }
  }
  return { ...structuredClone(body), apiVersion: apiVersionOf(type), kind: type.kind, metadata: { ...metadata } };
}

function checkPreconditions(type: ResourceType, old: KubeObject, meta: JsonObject): void {
  const rv = meta.resourceVersion;
  const name = String(old.metadata.name);
  if (typeof rv === "string" && rv !== "" && rv !== old.metadata.resourceVersion) {
    throw new ApiError(failureStatus(
      409,
      "Conflict",
      `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": the object has been modified; ` +
        "please apply your changes to the latest version and try again",
      { name, group: type.group, kind: type.resource },
    ));
  }
  const uid = meta.uid;
  if (typeof uid === "string" && uid !== "" && uid !== old.metadata.uid) {
    throw preconditionFailed(type, name, "UID", uid, old.metadata.uid);
  }
}

function preconditionFailed(type: ResourceType, name: string, what: string, want: string, got: Json | undefined) {
  return new ApiError(failureStatus(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(type)} "${name}": Precondition failed: ${what} in ` +
      `precondition: ${want}, ${what} in object meta: ${got ?? ""}`,
    { name, group: type.group, kind: type.resource },
  ));
}

/** kube-apiserver's `rest.BeforeDelete` conflict: the group-qualified Kind (not the resource) names the object. */
function deletePreconditionFailed(
  type: ResourceType,
  name: string,
  what: string,
  want: string,
  got: Json | undefined,
  hint: string,
): ApiError {
  const qualifiedKind = type.group === "" ? type.kind : `${type.kind}.${type.group}`;
  return new ApiError(failureStatus(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedKind} "${name}": the ${what} in the precondition (${want}) does not ` +
      `match the ${what} in record (${got ?? ""}). The object might have been ${hint}`,
    { name, group: type.group, kind: type.kind },
  ));
}

function notFoundOr(code: number, reason: string, type: ResourceType, name: string, what: string): ApiError {
  return new ApiError(failureStatus(code, reason, `${qualifiedResource(type)} "${name}" ${what}`, {
    name,
    group: type.group,
    kind: type.resource,
  }));
}

/** kube-apiserver's apply conflict (managedfields' `NewConflictError`): per manager, sorted, paths in order. */
function applyConflict(conflicts: { manager: string; operation: string; apiVersion: string; path: string[] }[]) {
  // An Update owner is named with the apiVersion it wrote (`printManager`); an Apply owner by name only.
  const who = (c: (typeof conflicts)[number]) =>
    c.operation === "Update" ? `"${c.manager}" using ${c.apiVersion}` : `"${c.manager}"`;
  const field = (c: (typeof conflicts)[number]) => "." + c.path.join(".");
  const sorted = [...conflicts].sort((a, b) =>
    a.manager.localeCompare(b.manager) || a.operation.localeCompare(b.operation) ||
    field(a).localeCompare(field(b))
  );
  const causes = sorted.map((c) => ({
    reason: "FieldManagerConflict",
    message: `conflict with ${who(c)}`,
    field: field(c),
  }));
  let message: string;
  if (sorted.length === 1) {
    message = `Apply failed with 1 conflict: ${causes[0]?.message}: ${causes[0]?.field}`;
  } else {
    const lines: string[] = [];
    let last = "";
    for (const c of sorted) {
      if (who(c) !== last) lines.push(`conflicts with ${who(c)}:`);
      last = who(c);
      lines.push(`- ${field(c)}`);
    }
    message = `Apply failed with ${sorted.length} conflicts: ${lines.join("\n")}`;
  }
  return new ApiError(failureStatus(409, "Conflict", message, { causes }));
}

function readManagers(obj: KubeObject): ManagerEntry[] {
  const raw = obj.metadata.managedFields;
  if (!Array.isArray(raw)) return [];
  return raw.filter(isObject).map((e) => ({
    manager: String(e.manager ?? ""),
    operation: e.operation === "Apply" ? "Apply" : "Update",
    apiVersion: String(e.apiVersion ?? ""),
    time: String(e.time ?? ""),
    paths: new Map(fromFieldsV1(e.fieldsV1).map((p) => [pathKey(p), p])),
  }));
}

function takeEntry(entries: ManagerEntry[], manager: string, operation: "Apply" | "Update", type: ResourceType) {
  let entry = entries.find((e) => e.manager === manager && e.operation === operation);
  if (entry === undefined) {
    entry = { manager, operation, apiVersion: apiVersionOf(type), time: nowSeconds(), paths: new Map() };
    entries.push(entry);
  }
  return entry;
}

function writeManagers(entries: ManagerEntry[]): Json {
  return entries.filter((e) => e.paths.size > 0).map((e) => {
    const fieldsV1 = toFieldsV1(e.paths.values());
    // An update (not an apply) also owns the labels/annotations map itself: structured-merge-diff writes "." there.
    const meta = fieldsV1["f:metadata"];
    if (e.operation === "Update" && isObject(meta)) {
      for (const f of ["f:labels", "f:annotations"]) {
        const map = meta[f];
        if (isObject(map)) meta[f] = { ".": {}, ...map };
      }
    }
    return {
      manager: e.manager,
      operation: e.operation,
      apiVersion: e.apiVersion,
      time: e.time,
      fieldsType: "FieldsV1",
      fieldsV1,
    };
  });
}

/** The object without what changes on every write: resourceVersion and managedFields timestamps. */
function withoutVolatile(obj: KubeObject): JsonObject {
  const copy = structuredClone(obj);
  delete copy.metadata.resourceVersion;
  const mf = copy.metadata.managedFields;
  if (Array.isArray(mf)) { for (const e of mf) if (isObject(e)) delete e.time; }
  return copy;
}

/** Everything that bumps `metadata.generation`: all but metadata and status. */
function specLike(obj: KubeObject): JsonObject {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

/** A metav1.Time: RFC 3339 with seconds, UTC. */
function nowSeconds(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}
