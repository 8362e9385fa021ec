/**
 * A tiny HTTPS API server stand-in, run as its own process so that a test can freeze it with SIGSTOP: answers every
 * request with 200 "ok". Usage: `deno run --allow-net=127.0.0.1 --allow-read=<dir> _readyz_tls_server.ts <cert> <key>`.
 * Prints the port it listens on (127.0.0.1, a free port) as the first line of stdout.
 *
 * @module
 */
const [certPath, keyPath] = Deno.args;
if (certPath === undefined || keyPath === undefined) throw new Error("usage: _readyz_tls_server.ts <cert> <key>");
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  cert: Deno.readTextFileSync(certPath),
  key: Deno.readTextFileSync(keyPath),
  onListen: ({ port }) => console.log(port),
}, () => new Response("ok", { headers: { "content-type": "text/plain" } }));
