/**
 * LIST with `limit` and `continue` for the fake API server. A continue token names a stored snapshot of the rest of
 * the list, so pages are consistent as with etcd; tokens older than the store's history floor get 410 `Expired`.
 *
 * @module
 */

import { isObject, type Json, type JsonObject } from "./_fake_api_fields.ts";
import { selectorOf } from "./_fake_api_http.ts";
import { apiVersionOf, type ResourceType } from "./_fake_api_resources.ts";
import type { ObjectPredicate } from "./_fake_api_selectors.ts";
import { ApiError, badRequest, failureStatus } from "./_fake_api_status.ts";
import type { KubeObject, ObjectStore } from "./_fake_api_store.ts";

const MAX_SNAPSHOTS = 64;

/** Answers LIST requests; holds the snapshots behind continue tokens. */
export class ListPager {
  readonly #store: ObjectStore;
  readonly #pages = new Map<string, { rv: number; items: KubeObject[] }>();

  constructor(store: ObjectStore) {
    this.#store = store;
  }

  /** Forgets every snapshot: their tokens then get 410. */
  expire(): void {
    this.#pages.clear();
  }

  /** The `<Kind>List` for a LIST request; items carry no `kind`/`apiVersion`, as on the real server. */
  list(type: ResourceType, namespace: string | undefined, q: URLSearchParams): JsonObject {
    const limitText = q.get("limit") ?? "";
    const limit = limitText === "" ? 0 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) badRequest(`invalid limit: '${limitText}': expected an integer ≥ 0`);
    const token = q.get("continue") ?? "";
    let rv: number;
    let items: KubeObject[];
    if (token !== "") {
      const page = this.#continuePage(token);
      rv = page.rv;
      items = page.items;
    } else {
      const matches = selectorOf(q);
      rv = this.#store.resourceVersion;
      items = this.#store.list(type, namespace).filter((o) => matches(o as Parameters<ObjectPredicate>[0]));
    }
    const metadata: JsonObject = { resourceVersion: String(rv) };
    if (limit > 0 && items.length > limit) {
      const rest = items.slice(limit);
      items = items.slice(0, limit);
      const id = crypto.randomUUID();
      this.#pages.set(id, { rv, items: rest });
      while (this.#pages.size > MAX_SNAPSHOTS) {
        const oldest = this.#pages.keys().next().value;
        if (oldest !== undefined) this.#pages.delete(oldest);
      }
      const last = items[items.length - 1]?.metadata;
      const start = `${last?.namespace ?? ""}/${last?.name ?? ""}\u0000`;
      metadata.continue = btoa(JSON.stringify({ v: "meta.k8s.io/v1", rv, start, id }));
      if (!q.has("labelSelector") && !q.has("fieldSelector")) metadata.remainingItemCount = rest.length;
    }
    return {
      kind: type.listKind,
      apiVersion: apiVersionOf(type),
      metadata,
      items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
    };
  }

  #continuePage(token: string): { rv: number; items: KubeObject[] } {
    let decoded: unknown;
    try {
      decoded = JSON.parse(atob(token));
    } catch {
      badRequest(`continue key is not valid: illegal base64 data`);
    }
    if (!isObject(decoded as Json) || typeof (decoded as JsonObject).id !== "string") {
      badRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    }
    const { id, rv } = decoded as { id: string; rv: number };
    const page = this.#pages.get(id);
    if (page === undefined || rv < this.#store.floor) {
      throw new ApiError(failureStatus(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list " +
          "without the continue parameter.",
      ));
    }
    this.#pages.delete(id);
    return page;
  }
}
