/**
 * Renders the Helm chart the way `helm template` would, for tests on machines without helm: values.yaml merged with
 * the test's values, every template rendered with the Go-template subset of `deploy_go_template.ts`.
 *
 * @module
 */
import { parse, parseAllDocuments } from "yaml";
import { TemplateSet } from "./deploy_go_template.ts";

/** A loaded chart. */
export interface Chart {
  /** Chart.yaml. */
  readonly meta: Readonly<Record<string, unknown>>;
  /** values.yaml. */
  readonly values: Readonly<Record<string, unknown>>;
  /** Template file names under templates/, sorted. */
  readonly templateFiles: readonly string[];
  readonly templates: TemplateSet;
  /** The chart's other files for `.Files.Get`, by their path in the chart (templates/ left out, as Helm does). */
  readonly files: ReadonlyMap<string, string>;
}

async function chartFiles(dir: URL, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(new URL(prefix, dir))) {
    const path = `${prefix}${e.name}`;
    if (e.isDirectory && path !== "templates") {
      for (const [k, v] of await chartFiles(dir, `${path}/`)) out.set(k, v);
    } else if (e.isFile) out.set(path, await Deno.readTextFile(new URL(path, dir)));
  }
  return out;
}

/** Loads a chart directory. */
export async function loadChart(dir: URL): Promise<Chart> {
  const meta = parse(await Deno.readTextFile(new URL("Chart.yaml", dir)));
  const values = parse(await Deno.readTextFile(new URL("values.yaml", dir)));
  const templates = new TemplateSet();
  const templateFiles: string[] = [];
  for await (const e of Deno.readDir(new URL("templates/", dir))) if (e.isFile) templateFiles.push(e.name);
  templateFiles.sort();
  // Helpers first, so that the other files find their defines (helm loads every file before rendering any).
  for (const name of [...templateFiles].sort((a, b) => Number(!a.startsWith("_")) - Number(!b.startsWith("_")))) {
    templates.add(name, await Deno.readTextFile(new URL(`templates/${name}`, dir)));
  }
  return { meta, values, templateFiles, templates, files: await chartFiles(dir) };
}

function fail(message: string): never {
  throw new Error(message);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Helm's merge of user values over the chart's: maps merge, everything else replaces. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeValues(base[k], v);
  return out;
}

/** Options of a render. */
export interface RenderOptions {
  readonly values?: Readonly<Record<string, unknown>>;
  readonly releaseName?: string;
  readonly namespace?: string;
}

/** Renders every template that is not a helper: file name → text. */
export function renderChart(chart: Chart, options: RenderOptions = {}): Map<string, string> {
  const meta = chart.meta;
  const top = {
    Values: mergeValues(chart.values, options.values ?? {}),
    Release: {
      Name: options.releaseName ?? "extractedprism",
      Namespace: options.namespace ?? "kube-system",
      Service: "Helm",
      IsInstall: true,
    },
    Chart: { Name: meta["name"], Version: meta["version"], AppVersion: meta["appVersion"] },
    // Helm's Get gives "" for a file that is not there; here that is a mistake in the chart, so it fails.
    Files: {
      Get: (path: unknown) =>
        chart.files.get(String(path)) ?? fail(`.Files.Get: no file '${String(path)}' in the chart`),
    },
  };
  const out = new Map<string, string>();
  for (const name of chart.templateFiles) {
    if (name.startsWith("_")) continue;
    out.set(name, chart.templates.render(name, top));
  }
  return out;
}

/** The Kubernetes objects of a render (NOTES.txt and empty documents left out). */
export function renderedObjects(rendered: ReadonlyMap<string, string>): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [];
  for (const [name, text] of rendered) {
    if (!name.endsWith(".yaml")) continue;
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${name} renders invalid YAML: ${doc.errors[0]!.message}\n${text}`);
      const v = doc.toJS();
      if (v !== null && v !== undefined) objects.push(v);
    }
  }
  return objects;
}
