import assert from "node:assert/strict";
import { ProxyApp } from "../lib/app.ts";
import { startDiscovery } from "../lib/discovery/discovery.ts";
import type { EndpointProvider } from "../lib/discovery/provider.ts";
import { writeStateFile } from "../lib/discovery/state_file.ts";
import { LogCapture } from "./support/log_capture.ts";
import { EchoServer, freePort, testConfig, waitFor } from "./support/net.ts";

Deno.test("without a kubeconfig or service account a valid state file still counts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_nocreds_" });
  try {
    await using known = new EchoServer();
    await writeStateFile(`${dir}/state.json`, [known.endpoint]);
    // The static endpoint is dead: only the state file's endpoint can make the proxy ready.
    const config = testConfig([{ host: "127.0.0.1", port: freePort() }], {
      enableDiscovery: true,
      stateFile: `${dir}/state.json`,
      healthRise: 1,
    });
    const discovery = startDiscovery(config, { endpoints: () => config.endpoints, serviceAccountDir: dir });
    try {
      await using app = ProxyApp.start(config);
      app.feed(discovery.providers);
      await waitFor(() => app.pool.get(`127.0.0.1:${known.port}`) !== undefined, 5000, "the state file's endpoint");
      await waitFor(() => app.ready, 5000, "the state file's endpoint to become healthy");
    } finally {
      await discovery.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without credentials the kubernetes provider stays silent until stopped, rather than end and stop the state file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "extractedprism_nocreds_" });
  try {
    await using cap = await LogCapture.start();
    const config = testConfig([{ host: "127.0.0.1", port: 1 }], { enableDiscovery: true });
    const discovery = startDiscovery(config, { endpoints: () => config.endpoints, serviceAccountDir: dir });
    const ctrl = new AbortController();
    const it = (discovery.providers[0] as EndpointProvider).run(ctrl.signal)[Symbol.asyncIterator]();
    const next = it.next();
    await cap.waitFor((r) => String(r.message.join("")).includes("Kubernetes discovery is off"), 10_000);
    // An ended provider ends within the same chain of promise jobs as that log line; one timer turn is plenty.
    const state = await Promise.race([
      next.then(() => "ended"),
      new Promise<string>((resolve) => setTimeout(() => resolve("silent"), 20)),
    ]);
    assert.equal(state, "silent");
    ctrl.abort();
    assert.equal((await next).done, true, "it ends once stopped");
    await discovery.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
