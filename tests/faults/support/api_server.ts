/**
 * A stand-in API server for the fault suite, run inside its own network namespace: HTTPS on one address, `/readyz`
 * answering 200, 500 or never (switched at run time), and every other path answering `{"server": name, "path": ...}`
 * so that a client can tell which server it reached through the proxy.
 *
 * Commands (JSON lines on stdin, see `_lines.ts`):
 * - `{"op":"readyz","mode":"ok"|"fail"|"hang"}`: how `/readyz` answers from now on; leaving `hang` releases the
 *   requests that hang (with 503, long after any probe gave up).
 * - `{"op":"probes"}`: every `/readyz` request so far, as `{at, mode}` (wall-clock ms, the mode that answered it).
 *
 * Prints `{"event":"listening","port":P}` once it accepts. Exits when stdin closes.
 *
 * Usage: `api_server.ts <name> <address> <port> <cert-file> <key-file>`
 *
 * @module
 */
import { type Command, emit, serveCommands } from "./_lines.ts";
import { wallNow } from "./https_client.ts";

type Mode = "ok" | "fail" | "hang";

const [name, hostname, port, certFile, keyFile] = Deno.args;
let mode: Mode = "ok";
const hanging = new Set<() => void>();
const probes: { at: number; mode: Mode }[] = [];
const MAX_PROBES = 100_000;

const server = Deno.serve({
  hostname: hostname ?? "127.0.0.1",
  port: Number(port ?? 0),
  cert: Deno.readTextFileSync(certFile ?? ""),
  key: Deno.readTextFileSync(keyFile ?? ""),
  onListen: (addr) => emit({ event: "listening", port: addr.port }),
  onError: () => new Response("internal error\n", { status: 500 }),
}, async (req) => {
  const path = new URL(req.url).pathname;
  if (path !== "/readyz") return Response.json({ server: name, path });
  const answering = mode;
  if (probes.length < MAX_PROBES) probes.push({ at: wallNow(), mode: answering });
  if (answering === "ok") return new Response("ok", { headers: { "content-type": "text/plain" } });
  if (answering === "fail") {
    return new Response("[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n", { status: 500 });
  }
  await new Promise<void>((resolve) => {
    const done = () => {
      hanging.delete(done);
      resolve();
    };
    hanging.add(done);
    req.signal.addEventListener("abort", done, { once: true });
  });
  return new Response("released\n", { status: 503 });
});

function setMode(next: unknown): Mode {
  if (next !== "ok" && next !== "fail" && next !== "hang") {
    throw new RangeError(`Cannot set readyz mode '${String(next)}': expected 'ok', 'fail' or 'hang'`);
  }
  mode = next;
  if (mode !== "hang") { for (const release of [...hanging]) release(); }
  return mode;
}

await serveCommands((cmd: Command) => {
  switch (cmd.op) {
    case "readyz":
      return Promise.resolve({ mode: setMode(cmd.mode) });
    case "probes":
      return Promise.resolve({ probes });
    default:
      return Promise.reject(new Error(`Cannot run command '${cmd.op}': expected readyz or probes`));
  }
});
for (const release of [...hanging]) release();
await server.shutdown();
