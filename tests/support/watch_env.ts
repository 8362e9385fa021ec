/**
 * The setup of the discovery tests: a test PKI, the fake API server (fast bookmarks) and a {@linkcode SimpleTransport}
 * to it, released together.
 *
 * @module
 */
import { type FakeApiServer, type FakeApiServerOptions, startFakeApiServer } from "./fake_apiserver.ts";
import { SimpleTransport } from "./simple_transport.ts";
import { createTestPki, type TestPki } from "./test_pki.ts";

/** The bearer token the fake API server accepts in a {@linkcode WatchEnv}. */
export const WATCH_ENV_TOKEN = "discovery-test-token";

/** A fake API server and a transport to it. */
export interface WatchEnv extends AsyncDisposable {
  readonly pki: TestPki;
  readonly api: FakeApiServer;
  readonly transport: SimpleTransport;
}

/** Starts a {@linkcode WatchEnv}; bookmarks every 50 ms unless `options` says otherwise. */
export async function startWatchEnv(options: Omit<FakeApiServerOptions, "pki"> = {}): Promise<WatchEnv> {
  const pki = await createTestPki();
  const api = await startFakeApiServer({ bookmarkIntervalMs: 50, ...options, pki, tokens: [WATCH_ENV_TOKEN] });
  const transport = new SimpleTransport({ baseUrl: api.url, caCert: pki.ca.cert, token: WATCH_ENV_TOKEN });
  return {
    pki,
    api,
    transport,
    async [Symbol.asyncDispose]() {
      transport.close();
      await api.close();
      await pki[Symbol.asyncDispose]();
    },
  };
}

/** The query of a logged request path. */
export function queryOf(path: string): URLSearchParams {
  return new URL(path, "https://fake.invalid").searchParams;
}
