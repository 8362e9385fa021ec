/**
 * Where the e2e suite finds its real binaries: the manifest `tests/e2e/build_fixtures.sh` writes (`KEY=PATH` lines),
 * named by {@linkcode FIXTURES_ENV}. The suite never builds anything itself: a build takes minutes and needs apt, so
 * it is a step of its own (`.ci/run`, or by hand), and a plain `deno task test` leaves the suite out.
 *
 * @module
 */

/** Names the manifest written by `tests/e2e/build_fixtures.sh`. */
export const FIXTURES_ENV = "EXTRACTEDPRISM_E2E_FIXTURES";

/** Absolute paths of the real binaries. */
export interface Fixtures {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly kubectl: string;
  /** The v1 API server (discovery.k8s.io/v1, coordination.k8s.io/v1) from sid's libraries, when it could be built. */
  readonly v1Apiserver?: string;
}

/** The fixtures, or why the suite cannot run. */
export type FixturesFound = { readonly ok: true; readonly fixtures: Fixtures } | {
  readonly ok: false;
  readonly reason: string;
};

/** Reads and checks the manifest named by {@linkcode FIXTURES_ENV}; never throws. */
export function findFixtures(): FixturesFound {
  const manifest = Deno.env.get(FIXTURES_ENV);
  if (manifest === undefined || manifest === "") {
    return {
      ok: false,
      reason: `${FIXTURES_ENV} is not set: build the fixtures with tests/e2e/build_fixtures.sh and name its manifest`,
    };
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(manifest);
  } catch (e) {
    return { ok: false, reason: `Cannot read the fixtures manifest '${manifest}': ${(e as Error).message}` };
  }
  const found = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z][A-Z0-9_]*)=(.+)$/.exec(line.trim());
    if (m !== null) found.set(m[1] as string, m[2] as string);
  }
  const paths: Record<string, string> = {};
  for (const key of ["KUBE_APISERVER", "ETCD", "KUBECTL"]) {
    const path = found.get(key);
    if (path === undefined) return { ok: false, reason: `The fixtures manifest '${manifest}' names no ${key}` };
    try {
      const st = Deno.statSync(path);
      if (!st.isFile || ((st.mode ?? 0o111) & 0o111) === 0) throw new Error("not an executable file");
    } catch (e) {
      return { ok: false, reason: `Cannot use ${key} '${path}' from '${manifest}': ${(e as Error).message}` };
    }
    paths[key] = path;
  }
  const fixtures: Fixtures = {
    kubeApiserver: paths.KUBE_APISERVER ?? "",
    etcd: paths.ETCD ?? "",
    kubectl: paths.KUBECTL ?? "",
  };
  const v1 = found.get("V1_APISERVER");
  return { ok: true, fixtures: v1 === undefined ? fixtures : { ...fixtures, v1Apiserver: v1 } };
}
