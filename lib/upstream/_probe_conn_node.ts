/**
 * The readyz probe's connection over Node's TLS, for what Deno's TLS cannot do: skip verification (no CA). This file,
 * and `node:tls` with it, are loaded on first use only.
 *
 * @module
 */
import type tls from "node:tls";
import type { Endpoint } from "../endpoint.ts";
import { type Http1Response, parseResponse } from "./_http1.ts";
import type { ProbeConn } from "./_probe_conn.ts";

/** Node's TLS: needed to skip verification (no CA). */
export class NodeProbeConn implements ProbeConn {
  readonly #socket: tls.TLSSocket;
  #data = "";
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  private constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      this.#data += d;
      this.#wake?.();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake?.();
    });
    socket.on("error", (e: Error) => {
      this.#error ??= e;
      this.#wake?.();
    });
  }

  static async open(endpoint: Endpoint, opts: tls.ConnectionOptions, signal: AbortSignal): Promise<NodeProbeConn> {
    // Loaded on first use, so that start-up does not wait for Node's TLS module.
    const { connect } = await import("node:tls");
    return new Promise((resolve, reject) => {
      const socket = connect({ ...opts, host: endpoint.host, port: endpoint.port });
      const onAbort = () => {
        socket.destroy();
        reject(signal.reason);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      socket.once("secureConnect", () => {
        signal.removeEventListener("abort", onAbort);
        resolve(new NodeProbeConn(socket));
      });
      socket.once("error", (e: Error) => {
        signal.removeEventListener("abort", onAbort);
        socket.destroy();
        reject(e);
      });
    });
  }

  get usable(): boolean {
    return !this.#ended && this.#error === undefined && !this.#socket.destroyed;
  }

  async request(head: string, signal: AbortSignal): Promise<Http1Response> {
    this.#data = "";
    this.#socket.write(head);
    for (;;) {
      if (this.#error) throw this.#error;
      const r = parseResponse(this.#data, this.#ended);
      if (r.kind === "done") return r.response;
      if (r.kind === "error") throw new Error(r.message);
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}
