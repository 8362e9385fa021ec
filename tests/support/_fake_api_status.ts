/**
 * `Status` objects as the Kubernetes API returns them (`k8s.io/apimachinery/pkg/api/errors`), and an error that
 * carries one through the fake API server's handlers.
 *
 * @module
 */

/** Details of a failure: which object, and field causes for `Invalid`. */
export interface StatusDetails {
  /** Name of the object concerned. */
  name?: string;
  /** API group of the object concerned. */
  group?: string;
  /** Plural resource name (the API server puts it under `kind`). */
  kind?: string;
  /** UID of the object concerned. */
  uid?: string;
  /** Field-level causes (`Invalid`, apply conflicts). */
  causes?: { reason: string; message: string; field: string }[];
  /** Seconds the client should wait before retrying (429, 503). */
  retryAfterSeconds?: number;
}

/** A `meta.k8s.io/v1` `Status`, exactly the JSON shape the API server sends. */
export interface KubeStatus {
  /** Always `Status`. */
  kind: "Status";
  /** Always `v1`. */
  apiVersion: "v1";
  /** Empty in every Status this fake sends. */
  metadata: Record<string, never> | { continue?: string };
  /** `Failure` for errors, `Success` for a DELETE. */
  status: "Failure" | "Success";
  /** Human-readable description. */
  message?: string;
  /** Machine-readable reason: `Expired`, `Gone`, `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`... */
  reason?: string;
  /** Which object, and field causes. */
  details?: StatusDetails;
  /** The HTTP status code. */
  code: number;
}

/** The reason the API server gives for each status code it chooses on its own (`errors.NewGenericServerResponse`). */
const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Builds a failure `Status`. */
export function failureStatus(code: number, reason: string, message: string, details?: StatusDetails): KubeStatus {
  const status: KubeStatus = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
  if (details !== undefined) {
    // StatusDetails' fields are omitempty: the core group's "" is left out on the wire.
    const { group, ...rest } = details;
    status.details = group === undefined || group === "" ? rest : { ...rest, group };
  }
  return status;
}

/** The `Status` the API server sends for a bare status code (used by `failNext`). */
export function statusForCode(code: number, message?: string): KubeStatus {
  const reason = REASONS[code] ?? (code >= 500 ? "InternalError" : "BadRequest");
  const details: StatusDetails | undefined = code === 429 || code === 503 ? { retryAfterSeconds: 1 } : undefined;
  return failureStatus(code, reason, message ?? defaultMessage(code), details);
}

function defaultMessage(code: number): string {
  switch (code) {
    case 429:
      return "Too many requests, please try again later.";
    case 500:
      return "Internal error occurred: injected by the fake API server";
    case 503:
      return "the server is currently unable to handle the request";
    case 504:
      return "Timeout: request did not complete within the allowed duration";
    default:
      return `the server responded with the status code ${code} but did not return more information`;
  }
}

/** A failure that a handler throws and the server turns into a `Status` response. */
export class ApiError extends Error {
  /** The `Status` to send. */
  readonly status: KubeStatus;

  constructor(status: KubeStatus) {
    super(status.message ?? status.reason ?? String(status.code));
    this.name = "ApiError";
    this.status = status;
  }
}

/** Throws a 400 `BadRequest`. */
export function badRequest(message: string): never {
  throw new ApiError(failureStatus(400, "BadRequest", message));
}

/** Throws a 422 `Invalid` for one field of one object, in the API server's message format. */
export function invalid(
  target: { kindName: string; group: string; name: string },
  field: string,
  detail: string,
): never {
  const qualified = target.group === "" ? target.kindName : `${target.kindName}.${target.group}`;
  const message = `${qualified} "${target.name}" is invalid: ${field}: ${detail}`;
  const reason = detail.startsWith("Required value") ? "FieldValueRequired" : "FieldValueInvalid";
  throw new ApiError(failureStatus(422, "Invalid", message, {
    name: target.name,
    group: target.group,
    kind: target.kindName,
    causes: [{ reason, message: detail, field }],
  }));
}
