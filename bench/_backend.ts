/**
 * The backend, started pinned to the load core: nginx `http` (TLS and plain, one worker) when nginx is installed,
 * this file run as a Deno server otherwise (`deno run -A bench/_backend.ts TLS_PORT PLAIN_PORT CERT KEY`). Both
 * answer every request with `ok`.
 *
 * @module
 */
import { BACKEND_BODY, backendNginxConf } from "./_configs.ts";
import type { Child, Children } from "./_process.ts";
import { requestOnce } from "./_load.ts";
import { delay, freePort, lastLines, which } from "./_process.ts";

/** A running backend. */
export interface Backend {
  /** Which server answers. */
  readonly kind: "nginx" | "deno";
  /** HTTPS port (self-signed certificate). */
  readonly tlsPort: number;
  /** Plain HTTP port. */
  readonly plainPort: number;
  /** The server process. */
  readonly child: Child;
}

/** Writes a self-signed P-256 certificate for `localhost`/127.0.0.1 into `dir` (cert.pem, key.pem); returns the PEM. */
export async function makeCertificate(children: Children, dir: string): Promise<string> {
  await children.run("openssl", [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    // rustls (Deno.connectTls) refuses a CA certificate as the server's own.
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/cert.pem`,
  ], { cpus: undefined, timeoutMs: 30_000 });
  return await Deno.readTextFile(`${dir}/cert.pem`);
}

/** Starts the backend pinned to `cpus` and waits until its plain port answers `ok`. */
export async function startBackend(
  children: Children,
  opts: { dir: string; cpus: string | undefined },
): Promise<Backend> {
  const tlsPort = freePort();
  const plainPort = freePort();
  const nginx = which("nginx");
  let child: Child;
  let kind: Backend["kind"];
  if (nginx) {
    kind = "nginx";
    const conf = `${opts.dir}/backend.conf`;
    await Deno.writeTextFile(conf, backendNginxConf(opts.dir, { tlsPort, plainPort }));
    child = children.spawn(
      "backend nginx",
      [nginx, "-e", `${opts.dir}/backend_early.log`, "-p", opts.dir, "-c", conf],
      {
        cpus: opts.cpus,
      },
    );
  } else {
    kind = "deno";
    const script = new URL(import.meta.url).pathname;
    const argv = [
      Deno.execPath(),
      "run",
      "-A",
      script,
      String(tlsPort),
      String(plainPort),
      `${opts.dir}/cert.pem`,
      `${opts.dir}/key.pem`,
    ];
    child = children.spawn("backend deno", argv, { cpus: opts.cpus });
  }
  const deadline = performance.now() + 15_000;
  while (!(await requestOnce(plainPort, 1000))) {
    if (child.exited || performance.now() > deadline) {
      await child.stop();
      const { stderr, stdout } = await child.output();
      throw new Error(`Cannot start the ${kind} backend on port ${plainPort}: ${lastLines(stderr || stdout)}`);
    }
    await delay(20);
  }
  return { kind, tlsPort, plainPort, child };
}

if (import.meta.main) {
  const [tlsPort, plainPort, certFile, keyFile] = Deno.args;
  if (!tlsPort || !plainPort || !certFile || !keyFile) {
    console.error(`Cannot start the backend '${Deno.args.join(" ")}': expected 'TLS_PORT PLAIN_PORT CERT KEY'`);
    Deno.exit(2);
  }
  const handler = () => new Response(BACKEND_BODY);
  const cert = await Deno.readTextFile(certFile);
  const key = await Deno.readTextFile(keyFile);
  Deno.serve({ hostname: "127.0.0.1", port: Number(tlsPort), cert, key, onListen: () => {} }, handler);
  Deno.serve({ hostname: "127.0.0.1", port: Number(plainPort), onListen: () => {} }, handler);
}
