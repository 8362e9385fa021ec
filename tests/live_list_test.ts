/** The list behind live connections and pending dial deadlines: order, size, removal, and detached nodes. */
import assert from "node:assert/strict";
import { LiveList } from "../lib/live_list.ts";

Deno.test("entries keep insertion order; removal from the head, middle and tail keeps the rest linked", () => {
  const list = new LiveList<string>();
  const nodes = ["a", "b", "c", "d", "e"].map((v) => list.add(v));
  assert.equal(list.size, 5);
  nodes[2]!.remove(); // middle
  nodes[0]!.remove(); // head
  nodes[4]!.remove(); // tail
  assert.deepEqual(list.values(), ["b", "d"]);
  assert.equal(list.size, 2);
  list.add("f");
  assert.deepEqual(list.values(), ["b", "d", "f"]);
  nodes[1]!.remove();
  nodes[3]!.remove();
  assert.deepEqual(list.values(), ["f"]);
  assert.equal(list.size, 1);
});

Deno.test("remove is idempotent and reports whether the node was still in the list", () => {
  const list = new LiveList<number>();
  const one = list.add(1);
  list.add(2);
  assert.equal(one.remove(), true);
  assert.equal(one.remove(), false);
  assert.equal(list.size, 1);
  assert.deepEqual(list.values(), [2]);
});

Deno.test("the list empties completely and fills again", () => {
  const list = new LiveList<number>();
  const nodes = [1, 2, 3].map((v) => list.add(v));
  for (const n of nodes) n.remove();
  assert.equal(list.size, 0);
  assert.deepEqual(list.values(), []);
  list.add(4);
  assert.deepEqual(list.values(), [4]);
});

Deno.test("a removed node holds nothing: no neighbours, no value, no list", () => {
  // What keeps the garbage collector from promoting dead connections (see the module's documentation).
  const list = new LiveList<{ id: number }>();
  list.add({ id: 1 });
  const middle = list.add({ id: 2 });
  list.add({ id: 3 });
  middle.remove();
  assert.equal(middle.prev, undefined);
  assert.equal(middle.next, undefined);
  assert.equal(middle.value, undefined);
  assert.equal(middle.list, undefined);
});

Deno.test("values() is a copy: entries can be removed while walking it", () => {
  const list = new LiveList<number>();
  const nodes = new Map<number, { remove(): boolean }>();
  for (const v of [1, 2, 3, 4]) nodes.set(v, list.add(v));
  const seen: number[] = [];
  for (const v of list.values()) {
    seen.push(v);
    nodes.get(v)!.remove();
    if (v === 1) nodes.get(2)!.remove(); // another entry, ahead of the walk
  }
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.equal(list.size, 0);
});
