/**
 * PEM block picking: one file may hold a certificate chain and its key (kubelet's `kubelet-client-current.pem`).
 *
 * @module
 */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The `CERTIFICATE` blocks of `pem`, joined by newlines, or `undefined` if it has none. */
export function pemCertificates(pem: string): string | undefined {
  const certs = [...pem.matchAll(BLOCK)].filter((m) => m[1] === "CERTIFICATE").map((m) => m[0]);
  return certs.length > 0 ? certs.join("\n") + "\n" : undefined;
}

/** The first private key block (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`) of `pem`, or `undefined`. */
export function pemPrivateKey(pem: string): string | undefined {
  const key = [...pem.matchAll(BLOCK)].find((m) => /^(EC |RSA )?PRIVATE KEY$/.test(m[1] ?? ""));
  return key ? key[0] + "\n" : undefined;
}
