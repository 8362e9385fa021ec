import assert from "node:assert/strict";
import { PROXY_FLAGS } from "../lib/config/proxy_flags.ts";

const README = new URL("../README.md", import.meta.url);

/** The README's flag table, as the flag table says it must read. */
function expectedTable(): string {
  const rows = PROXY_FLAGS.map((f) => {
    const flag = f.valueName === "bool" ? `--${f.name} [bool]` : `--${f.name} <${f.valueName}>`;
    const def = f.default === undefined ? "—" : `\`${f.default}\``;
    return `| \`${flag}\` | \`${f.env}\` | ${def} | ${f.help} |`;
  });
  return ["| Flag | Environment | Default | Meaning |", "|---|---|---|---|", ...rows].join("\n");
}

/** Table rows as trimmed cells, separator rows dropped: `deno fmt` pads Markdown tables. */
function cells(table: string): string[][] {
  return table.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("|") && !/^\|[\s|:-]+\|$/.test(l))
    .map((l) => l.slice(1, -1).split("|").map((c) => c.trim()));
}

Deno.test("the README's flag table matches the flag table of the program", async () => {
  const text = await Deno.readTextFile(README);
  const m = /<!-- flags:begin -->([\s\S]*?)<!-- flags:end -->/.exec(text);
  assert.ok(m, "README.md has a <!-- flags:begin --> ... <!-- flags:end --> block");
  assert.deepEqual(
    cells(m[1] ?? ""),
    cells(expectedTable()),
    "regenerate the README flag table from lib/config/proxy_flags.ts",
  );
});

Deno.test("the README has exactly one test command and one start command", async () => {
  const text = await Deno.readTextFile(README);
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((b) => b[1]?.trim());
  assert.equal(blocks.filter((b) => b?.includes("task test")).length, 1);
  assert.equal(blocks.filter((b) => b?.includes("task start")).length, 1);
  const ci = await Deno.readTextFile(new URL("../.ci/run", import.meta.url));
  const testCommand = blocks.find((b) => b?.includes("task test"));
  assert.ok(testCommand && ci.includes(testCommand), ".ci/run runs the README's test command");
});
