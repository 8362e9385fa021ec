/**
 * A small client of V8's inspector protocol, over the WebSocket of a process started with `--inspect`: what
 * `bench/heap_snapshot.ts` and `bench/cpu_profile.ts` use. Loopback only.
 *
 * @module
 */

/** An open inspector session. */
export interface Inspector {
  /** Sends `method` and resolves with its result; rejects with the protocol's error message. */
  call(method: string, params?: object): Promise<unknown>;
  close(): void;
}

/**
 * Opens a session with the first target of the inspector at `address` (`127.x.x.x:port`). `onEvent` gets the
 * protocol's events (messages without an id), such as `HeapProfiler.addHeapSnapshotChunk`.
 */
export async function openInspector(
  address: string,
  onEvent: (method: string, params: unknown) => void = () => {},
): Promise<Inspector> {
  if (!/^127\.\d+\.\d+\.\d+:\d+$/.test(address)) {
    throw new Error(`The inspector's address must be 127.x.x.x:port, got '${address}'`);
  }
  const targets = await (await fetch(`http://${address}/json/list`)).json() as { webSocketDebuggerUrl: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (url === undefined) throw new Error(`No inspector target at ${address}`);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`Cannot open the inspector's WebSocket ${url}`));
  });
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data) as {
      id?: number;
      method?: string;
      params?: unknown;
      result?: unknown;
      error?: {
        message: string;
      };
    };
    if (m.id === undefined) {
      if (m.method !== undefined) onEvent(m.method, m.params);
      return;
    }
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error) w?.reject(new Error(`${m.error.message}`));
    else w?.resolve(m.result);
  };
  let id = 0;
  return {
    call: (method, params = {}) =>
      new Promise((resolve, reject) => {
        waiting.set(++id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}
