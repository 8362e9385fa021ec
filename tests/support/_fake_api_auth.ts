/**
 * Authentication (client certificate, then bearer token, as the API server's union authenticator orders them) and a
 * tiny RBAC table for the fake API server.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { qualifiedResource, type ResourceType } from "./_fake_api_resources.ts";
import { failureStatus, type KubeStatus } from "./_fake_api_status.ts";

/** Who sent a request. */
export interface Identity {
  /** User name: the certificate's CN, or the token's user. */
  readonly user: string;
  /** Groups: the certificate's O values, or the service-account groups; always `system:authenticated`. */
  readonly groups: readonly string[];
  /** How the identity was proven. */
  readonly method: "x509" | "token";
}

/** One allowed (verb, resource) pair; `"*"` matches any. Verbs: get, list, watch, create, update, patch, delete. */
export interface Grant {
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or `*`. */
  readonly verb: string;
  /** Plural resource name (`endpointslices`), or `*`. */
  readonly resource: string;
}

/** The user name of bearer tokens that {@linkcode FakeAuthState.tokenUsers} does not name. */
export const DEFAULT_TOKEN_USER = "system:serviceaccount:kube-system:extractedprism";

/** The mutable authentication and authorization state. */
export interface FakeAuthState {
  readonly tokens: Set<string>;
  readonly tokenUsers: Map<string, string>;
  readonly rbac: Map<string, Grant[]>;
}

/**
 * Authenticates a request: a client certificate that chains to the CA wins; otherwise a bearer token in `tokens`.
 *
 * @returns undefined when neither proves an identity (the caller answers 401)
 */
export function authenticate(req: IncomingMessage, state: FakeAuthState): Identity | undefined {
  const socket = req.socket as TLSSocket;
  if (socket.authorized === true) {
    const cert = socket.getPeerCertificate();
    const subject = (cert?.subject ?? {}) as unknown as Record<string, string | string[] | undefined>;
    const cn = subject.CN;
    const user = Array.isArray(cn) ? cn[0] : cn;
    if (user !== undefined && user !== "") {
      const o = subject.O;
      const orgs = o === undefined ? [] : Array.isArray(o) ? o : [o];
      return { user, groups: [...orgs, "system:authenticated"], method: "x509" };
    }
  }
  const header = req.headers.authorization ?? "";
  const m = header.match(/^bearer\s+(\S+)\s*$/i);
  const token = m?.[1];
  if (token === undefined || !state.tokens.has(token)) return undefined;
  const user = state.tokenUsers.get(token) ?? DEFAULT_TOKEN_USER;
  const groups = ["system:authenticated"];
  const sa = user.match(/^system:serviceaccount:([^:]+):/);
  if (sa !== null) groups.unshift("system:serviceaccounts", `system:serviceaccounts:${sa[1]}`);
  return { user, groups, method: "token" };
}

/**
 * Whether `identity` may do `verb` on `resource`. Rules are looked up under the user name and each group; an identity
 * with no rule under any of them may do everything (the default for configured identities).
 */
export function authorize(identity: Identity, verb: string, resource: string, rbac: Map<string, Grant[]>): boolean {
  const rules = [identity.user, ...identity.groups].flatMap((k) => rbac.get(k) ?? []);
  const named = [identity.user, ...identity.groups].some((k) => rbac.has(k));
  if (!named) return true;
  return rules.some((g) => (g.verb === "*" || g.verb === verb) && (g.resource === "*" || g.resource === resource));
}

/** The 401 `Status`. */
export function unauthorizedStatus(): KubeStatus {
  return failureStatus(401, "Unauthorized", "Unauthorized");
}

/** The 403 `Status`, worded as the RBAC authorizer words it. */
export function forbiddenStatus(
  identity: Identity,
  verb: string,
  type: ResourceType,
  where: { namespace?: string; name?: string },
): KubeStatus {
  const subject = where.name === undefined ? qualifiedResource(type) : `${qualifiedResource(type)} "${where.name}"`;
  const scope = where.namespace === undefined ? "at the cluster scope" : `in the namespace "${where.namespace}"`;
  const message = `${subject} is forbidden: User "${identity.user}" cannot ${verb} resource "${type.resource}" ` +
    `in API group "${type.group}" ${scope}`;
  const details: { name?: string; group: string; kind: string } = { group: type.group, kind: type.resource };
  if (where.name !== undefined) details.name = where.name;
  return failureStatus(403, "Forbidden", message, details);
}
