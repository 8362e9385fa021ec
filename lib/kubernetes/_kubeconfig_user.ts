/**
 * The `users[].user` section of a kubeconfig: how the client authenticates (a token or token file, a client
 * certificate, an exec credential plugin), with every unsupported field refused by name.
 *
 * @module
 */
import type { ExecApiVersion, ExecConfig, ExecEnvVar, UserAuth } from "./connection.ts";
import { checkFields, type Fail, type Obj, optString, pemSource } from "./_kubeconfig_fields.ts";
import { isRecord } from "./types.ts";

const USER_FIELDS = [
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "token",
  "tokenFile",
  "exec",
  "extensions",
];
const EXEC_FIELDS = ["apiVersion", "command", "args", "env", "installHint", "provideClusterInfo", "interactiveMode"];
const EXEC_VERSIONS: readonly string[] = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];

/** Reads one user mapping. */
export function parseUser(
  user: Obj,
  where: string,
  resolve: (p: string) => string,
  fail: Fail,
): UserAuth {
  checkFields(user, USER_FIELDS, where, fail);
  const cert = pemSource(user, "client-certificate", where, resolve, fail);
  const key = pemSource(user, "client-key", where, resolve, fail);
  if (cert && !key) fail(`${where} has client-certificate but no client-key`);
  if (key && !cert) fail(`${where} has client-key but no client-certificate`);
  const token = optString(user, "token", where, fail) || undefined;
  const tokenFile = optString(user, "tokenFile", where, fail) || undefined;
  const exec = user.exec === undefined || user.exec === null
    ? undefined
    : parseExec(user.exec, `${where} exec`, resolve, fail);
  return {
    ...(token ? { token } : {}),
    ...(tokenFile ? { tokenFile: resolve(tokenFile) } : {}),
    ...(cert && key ? { clientCert: { cert, key } } : {}),
    ...(exec ? { exec } : {}),
  };
}

function parseExec(
  raw: unknown,
  where: string,
  resolve: (p: string) => string,
  fail: Fail,
): ExecConfig {
  if (!isRecord(raw)) return fail(`${where}: expected a mapping`);
  for (const k of Object.keys(raw)) {
    if (!EXEC_FIELDS.includes(k)) fail(`${where} uses unsupported field '${k}'`);
  }
  const apiVersion = optString(raw, "apiVersion", where, fail);
  if (!apiVersion || !EXEC_VERSIONS.includes(apiVersion)) {
    fail(`${where} has apiVersion '${apiVersion ?? ""}': expected one of ${EXEC_VERSIONS.join(", ")}`);
  }
  const command = optString(raw, "command", where, fail);
  if (!command) return fail(`${where} has no command`);
  // kubectl resolves a relative command only when it names a path, not a program looked up in PATH.
  const resolvedCommand = command.includes("/") ? resolve(command) : command;
  const args = raw.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) fail(`${where} args: expected a string list`);
  const env: ExecEnvVar[] = [];
  for (const e of (raw.env ?? []) as unknown[]) {
    if (!isRecord(e) || typeof e.name !== "string" || !e.name || typeof e.value !== "string") {
      fail(`${where} env: expected entries with a name and a string value`);
    }
    env.push({ name: (e as Obj).name as string, value: (e as Obj).value as string });
  }
  const mode = optString(raw, "interactiveMode", where, fail) ??
    (apiVersion === "client.authentication.k8s.io/v1" ? undefined : "IfAvailable");
  if (mode === undefined) fail(`${where} has no interactiveMode; expected 'Never' (required by ${apiVersion})`);
  // The proxy has no terminal: "IfAvailable" then means "Never", as in client-go without a TTY.
  if (mode !== "Never" && mode !== "IfAvailable") {
    fail(`${where} uses unsupported field 'interactiveMode: ${mode}' (the proxy has no terminal; expected Never)`);
  }
  const installHint = optString(raw, "installHint", where, fail) || undefined;
  const provide = raw.provideClusterInfo;
  if (provide !== undefined && typeof provide !== "boolean") {
    fail(`${where} provideClusterInfo: expected true or false`);
  }
  return {
    apiVersion: apiVersion as ExecApiVersion,
    command: resolvedCommand,
    args: args as string[],
    env,
    ...(installHint ? { installHint } : {}),
    ...(provide === true ? { cluster: {} } : {}),
  };
}
