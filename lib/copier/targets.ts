/**
 * Which Services are targets of the copier, and what each one copies: the flag-named Service, or one annotated
 * `endpoint-copier/enabled: "true"`, with its source named by annotations or the flag defaults.
 *
 * @module
 */
import {
  ANNOTATION_ENABLED,
  ANNOTATION_SOURCE_NAME,
  ANNOTATION_SOURCE_NAMESPACE,
  type ServiceInfo,
} from "./objects.ts";

/** A Service by namespace and name. */
export interface ServiceRef {
  /** The Service's namespace. */
  readonly namespace: string;
  /** The Service's name. */
  readonly name: string;
}

/** The flag defaults that decide targets and sources. */
export interface CopierDefaults {
  /** `--managed-endpoint-namespace` / `--managed-endpoint-name`: a target even without the annotation. */
  readonly managedTarget: ServiceRef;
  /** `--default-endpoint-namespace` / `--default-endpoint-name`: the source when the annotations name none. */
  readonly defaultSource: ServiceRef;
}

/** Something an operator should know about a target: logged, and recorded as a Kubernetes Event. */
export interface CopierWarning {
  /** A CamelCase reason, as in Events: `NamedTargetPort`, `SelectorRefused`, `SourceIsTarget`, `EmptySource`. */
  readonly reason: string;
  /** One sentence. */
  readonly message: string;
}

/** What to do with a Service. */
export type TargetDecision =
  | { readonly kind: "ignore" }
  | { readonly kind: "refuse"; readonly warning: CopierWarning }
  | { readonly kind: "copy"; readonly source: ServiceRef };

/**
 * Decides whether a Service is a target: the flag-named one, or one annotated `endpoint-copier/enabled: "true"`.
 * A target with a selector is refused (the endpointslice controller owns its slices), and so is one that would copy
 * itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideTarget } from "./targets.ts";
 * import { decodeService } from "./objects.ts";
 * const defaults = {
 *   managedTarget: { namespace: "default", name: "kubernetes-vip" },
 *   defaultSource: { namespace: "default", name: "kubernetes" },
 * };
 * const vip = decodeService({ metadata: { name: "kubernetes-vip", namespace: "default", uid: "u" } });
 * assert(decideTarget(vip, defaults).kind === "copy");
 * ```
 */
export function decideTarget(svc: ServiceInfo | undefined, defaults: CopierDefaults): TargetDecision {
  if (svc === undefined) return { kind: "ignore" };
  const { name, namespace, annotations } = svc.metadata;
  const flagNamed = name === defaults.managedTarget.name && namespace === defaults.managedTarget.namespace;
  if (!flagNamed && annotations[ANNOTATION_ENABLED] !== "true") return { kind: "ignore" };
  const key = `${namespace}/${name}`;
  if (svc.hasSelector) {
    return {
      kind: "refuse",
      warning: {
        reason: "SelectorRefused",
        message: `Service '${key}' has a selector: the endpointslice controller manages its slices, so the copier ` +
          "leaves it alone (remove the selector or the annotation)",
      },
    };
  }
  const source: ServiceRef = {
    namespace: annotations[ANNOTATION_SOURCE_NAMESPACE] || defaults.defaultSource.namespace,
    name: annotations[ANNOTATION_SOURCE_NAME] || defaults.defaultSource.name,
  };
  if (source.namespace === namespace && source.name === name) {
    return {
      kind: "refuse",
      warning: { reason: "SourceIsTarget", message: `Service '${key}' names itself as its source: nothing to copy` },
    };
  }
  return { kind: "copy", source };
}
