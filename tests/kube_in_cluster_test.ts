import assert from "node:assert/strict";
import { loadInCluster, SERVICE_ACCOUNT_DIR } from "../lib/kubernetes/in_cluster.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test("the default service-account directory is the kubelet's mount point", () => {
  assert.equal(SERVICE_ACCOUNT_DIR, "/var/run/secrets/kubernetes.io/serviceaccount");
});

Deno.test("in-cluster files are found in the given directory, as files that rotations update", opts, async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("no token file: not in a pod", () => {
      assert.equal(loadInCluster(dir), undefined);
    });
    await t.step("a token without ca.crt is an error", async () => {
      await Deno.writeTextFile(`${dir}/token`, "t");
      assert.throws(() => loadInCluster(dir), {
        message: `Cannot use service account '${dir}': expected 'ca.crt' beside 'token'`,
      });
    });
    await t.step("token, CA and namespace; no server (the known endpoints are dialled)", async () => {
      await Deno.writeTextFile(`${dir}/ca.crt`, "pem");
      await Deno.writeTextFile(`${dir}/namespace`, "kube-system\n");
      assert.deepEqual(loadInCluster(dir), {
        origin: `service account '${dir}'`,
        ca: { file: `${dir}/ca.crt` },
        auth: { tokenFile: `${dir}/token` },
        namespace: "kube-system",
      });
    });
    await t.step("the kubelet's symlinked layout (..data) is followed", async () => {
      const sa = `${dir}/sa`;
      await Deno.mkdir(`${sa}/..2026_01_01`, { recursive: true });
      await Deno.writeTextFile(`${sa}/..2026_01_01/token`, "t");
      await Deno.writeTextFile(`${sa}/..2026_01_01/ca.crt`, "pem");
      await Deno.symlink("..2026_01_01", `${sa}/..data`);
      await Deno.symlink("..data/token", `${sa}/token`);
      await Deno.symlink("..data/ca.crt", `${sa}/ca.crt`);
      assert.equal(loadInCluster(sa)?.auth.tokenFile, `${sa}/token`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
