// Talking to Gemba's HTTP API: JSON fetches, the asset tree and the live stream
// (GET /api/v1/stream/latest, server-sent events).

export async function getJSON(url) {
  const r = await fetch(url);
  // The session ended (expired, signed out elsewhere, password changed): back to the sign-in.
  if (r.status === 401) location.reload();
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg = (await r.json()).error.message; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

export function qs(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

let treePromise = null;
/** The asset tree (`GET /api/v1/assets`), fetched once per page load. */
export function assetTree() {
  treePromise ??= getJSON('/api/v1/assets');
  return treePromise;
}

const level = (n) => String(n.level || '').toLowerCase();

/** Every machine node of the tree, in tree order. */
export function machines(tree) {
  const out = [];
  const walk = (n) => {
    if (level(n) === 'machine') out.push(n);
    for (const c of n.children || []) walk(c);
  };
  walk(tree);
  return out;
}

/** The node with this path, or null. */
export function findNode(tree, path) {
  if (tree.path === path) return tree;
  for (const c of tree.children || []) {
    const f = findNode(c, path);
    if (f) return f;
  }
  return null;
}

export const signalName = (path) => path.slice(path.lastIndexOf('/') + 1);
export { level };

// ---- live values ------------------------------------------------------------------------------

/** signal path → {signal, ts, value, unit, state}; filled by the live stream. */
export const latest = new Map();
const subscribers = new Set();
const statusSubscribers = new Set();
let source = null;
let status = 'connecting';

function setStatus(s) {
  status = s;
  for (const fn of statusSubscribers) fn(s);
}

/** Opens the one live connection of the page (pages subscribe with onLive). */
export function connect() {
  if (source) return;
  source = new EventSource('/api/v1/stream/latest');
  source.onopen = () => setStatus('on');
  source.onerror = () => setStatus(source.readyState === EventSource.CLOSED ? 'off' : 'connecting');
  source.addEventListener('update', (e) => {
    const msg = JSON.parse(e.data);
    for (const v of msg.latest) latest.set(v.signal, v);
    setStatus('on');
    for (const fn of subscribers) {
      try { fn(msg); } catch (err) { console.error(err); }
    }
  });
}

/** Calls `fn({ts, full, latest, events})` for every live message; returns the unsubscribe. */
export function onLive(fn) {
  connect();
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function onStatus(fn) {
  statusSubscribers.add(fn);
  fn(status);
}

/** Latest values already known, or fetched once when the stream has not delivered yet. */
export async function latestUnder(prefix) {
  if (latest.size === 0) {
    for (const v of await getJSON(`/api/v1/latest?${qs({ prefix })}`)) {
      if (!latest.has(v.signal)) latest.set(v.signal, v);
    }
  }
  return [...latest.values()].filter((v) => !prefix || v.signal.startsWith(`${prefix}/`));
}
