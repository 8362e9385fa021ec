/**
 * A child process for `tests/copier_http_test.ts`: the copier's probe server (`serveHttp` with `probeHandler`, as
 * `runCopier` starts it) on a loopback port, printed on stdout; error lines on stderr; SIGTERM shuts it down and exits 0.
 *
 * @module
 */
import { configure, getConsoleSink } from "@logtape/logtape";
import { probeHandler, serveHttp } from "../../lib/copier/http.ts";

await configure({
  sinks: { stderr: getConsoleSink() },
  loggers: [
    { category: ["extractedprism"], lowestLevel: "error", sinks: ["stderr"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
  ],
});
const server = serveHttp({ host: "127.0.0.1", port: 0 }, "probes", probeHandler({ notReadyReason: () => undefined }));
Deno.addSignalListener("SIGTERM", () => {
  server.shutdown().then(() => Deno.exit(0));
});
console.log(server.addr.port);
