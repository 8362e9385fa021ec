/**
 * API discovery documents of the fake API server (`/api`, `/api/v1`, `/apis`, `/apis/GROUP`, `/apis/GROUP/VERSION`)
 * in kube-apiserver's shapes, and the two kinds of 404 a real server gives for what it does not serve: a JSON
 * `NotFound` Status (with empty `details`) under a served group's prefix, and the mux's plain-text
 * `404 page not found` anywhere else.
 *
 * @module
 */
import type { JsonObject } from "./_fake_api_fields.ts";
import { apiVersionOf, RESOURCE_TYPES, type ResourceType } from "./_fake_api_resources.ts";

/** The verbs kube-apiserver lists for a namespaced resource (the fake answers `deletecollection` with 405). */
const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/** Which group versions this server serves: all of {@linkcode RESOURCE_TYPES} but `unserved` (`group/version`). */
export class Discovery {
  readonly #served: readonly ResourceType[];

  constructor(unserved: Iterable<string> = []) {
    const out = new Set(unserved);
    this.#served = RESOURCE_TYPES.filter((t) => !out.has(apiVersionOf(t)));
  }

  /** Whether a type's group version is served. */
  serves(type: ResourceType): boolean {
    return this.#served.includes(type);
  }

  /** The discovery document at `pathname`, or undefined when it is not one. */
  document(pathname: string, serverAddress: string): JsonObject | undefined {
    const parts = pathname.split("/").filter((p) => p !== "");
    const cidrs = [{ clientCIDR: "0.0.0.0/0", serverAddress }];
    if (parts[0] === "api") {
      const core = this.#served.filter((t) => t.group === "");
      if (core.length === 0) return undefined;
      if (parts.length === 1) return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: cidrs };
      if (parts.length === 2 && parts[1] === "v1") return resourceList("v1", core);
      return undefined;
    }
    if (parts[0] !== "apis") return undefined;
    const groups = [...new Set(this.#served.filter((t) => t.group !== "").map((t) => t.group))];
    if (parts.length === 1) {
      return {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: groups.map((g) => this.#group(g)),
      };
    }
    const group = parts[1] ?? "";
    if (!groups.includes(group)) return undefined;
    if (parts.length === 2) return { kind: "APIGroup", apiVersion: "v1", ...this.#group(group) };
    const types = this.#served.filter((t) => t.group === group && t.version === parts[2]);
    if (parts.length === 3 && types.length > 0) return resourceList(`${group}/${parts[2]}`, types);
    return undefined;
  }

  /**
   * Whether a path lies under the core group or a group the server knows (at any version, as 1.20 knows
   * discovery.k8s.io at v1beta1): its 404 is a JSON Status, not plain text.
   */
  underKnownGroup(pathname: string): boolean {
    const parts = pathname.split("/").filter((p) => p !== "");
    return parts[0] === "api" || (parts[0] === "apis" && RESOURCE_TYPES.some((t) => t.group === parts[1]));
  }

  #group(name: string): JsonObject {
    const versions = [...new Set(this.#served.filter((t) => t.group === name).map((t) => t.version))];
    const entries = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: entries, preferredVersion: entries[0] ?? null };
  }
}

function resourceList(groupVersion: string, types: readonly ResourceType[]): JsonObject {
  const resources: JsonObject[] = [];
  for (const t of types) {
    resources.push({ name: t.resource, singularName: "", namespaced: true, kind: t.kind, verbs: VERBS });
    if (t.hasStatusSubresource) {
      resources.push({
        name: `${t.resource}/status`,
        singularName: "",
        namespaced: true,
        kind: t.kind,
        verbs: ["get", "patch", "update"],
      });
    }
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion, resources };
}
