// Events page: GET /api/v1/events with type / asset / range filters, live additions from the stream.
import { assetTree, getJSON, onLive, qs, level } from '../api.js';
import { t, dateTime, num } from '../i18n.js';
import { h, tr, typeLabel, stateLabel, errorBox, eventType } from '../ui.js';

const TYPES = ['state', 'production', 'move', 'custom:failure', 'custom:fault_onset'];
const RANGES = { '1h': 3600e3, '8h': 8 * 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
const LIMIT = 500;
const MAX_ATTRS = 4;

/** A one-line description of an event's body and attributes. */
export function eventDetails(e) {
  const parts = [];
  switch (e.type) {
    case 'state':
      parts.push(stateLabel(e.state));
      if (e.reason) parts.push(`(${e.reason})`);
      break;
    case 'production':
      parts.push(`${t('machine.good')} ${num(e.good, 0)}`, `${t('machine.scrap')} ${num(e.scrap, 0)}`);
      if (e.lot) parts.push(e.lot);
      break;
    case 'move':
      parts.push(`${e.lot}: ${e.from} → ${e.to}, ${num(e.quantity)}`);
      break;
    default:
      break;
  }
  // Attributes: text ones (mode, fault, …) first, then numbers; at most MAX_ATTRS.
  const attrs = Object.entries(e.attrs || {}).sort(([, a], [, b]) => (typeof a === 'string' ? 0 : 1) - (typeof b === 'string' ? 0 : 1));
  for (const [k, v] of attrs.slice(0, MAX_ATTRS)) {
    parts.push(`${k}=${typeof v === 'number' ? num(v, 2) : typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  if (attrs.length > MAX_ATTRS) parts.push('…');
  return parts.join(' ');
}

export function eventRow(e) {
  const type = eventType(e);
  return h('tr', { dataset: { type } },
    h('td.time', {}, dateTime(e.ts)),
    // Only machines have a page (site/area/line/machine).
    h('td', {}, e.asset.split('/').length === 4 ? h('a', { href: `#/machine/${e.asset}` }, e.asset) : e.asset),
    h('td', {}, h('span.tag', { dataset: { type } }, typeLabel(type))),
    h('td', {}, eventDetails(e)));
}

function options(values, selected, label) {
  return values.map(([v, text]) => h('option', { value: v, selected: v === selected }, label ? label(text) : text));
}

export async function render(root) {
  const tree = await assetTree();
  const assets = [];
  const walk = (n) => {
    if (level(n) !== 'enterprise' && n.path) assets.push(n.path);
    for (const c of n.children || []) walk(c);
  };
  walk(tree);
  const state = { type: '', asset: '', range: '24h' };
  const typeSel = h('select', { 'data-testid': 'events-type' },
    h('option', { value: '' }, t('common.all')), options(TYPES.map((x) => [x, x]), '', typeLabel));
  const assetSel = h('select', { 'data-testid': 'events-asset' },
    h('option', { value: '' }, t('common.all')), options(assets.map((x) => [x, x]), ''));
  const rangeSel = h('select', {}, options(Object.keys(RANGES).map((x) => [x, t(`range.${x}`)]), state.range));
  const count = h('p.muted');
  const tbody = h('tbody');
  const table = h('table.events', { 'data-testid': 'events-table' },
    h('thead', {}, h('tr', {}, tr('th', 'common.time'), tr('th', 'common.asset'), tr('th', 'common.type'), tr('th', 'common.details'))),
    tbody);
  root.append(
    tr('h1', 'events.title'),
    h('div.filters', {},
      h('label', {}, t('events.filter_type'), ' ', typeSel),
      h('label', {}, t('events.filter_asset'), ' ', assetSel),
      h('label', {}, t('common.range'), ' ', rangeSel)),
    count, table);

  let shown = 0;
  let seen = new Set(); // ids already listed: the stream may repeat what the fetch returned
  async function load() {
    state.type = typeSel.value;
    state.asset = assetSel.value;
    state.range = rangeSel.value;
    const now = Date.now();
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 4 }, t('common.loading'))));
    try {
      const evs = await getJSON(`/api/v1/events?${qs({
        type: state.type, asset: state.asset, from: Math.round(now - RANGES[state.range]), to: now + 60000, limit: 10000,
      })}`);
      evs.sort((a, b) => b.ts - a.ts || b.id - a.id);
      seen = new Set(evs.map((e) => e.id));
      const rows = evs.slice(0, LIMIT).map(eventRow);
      shown = rows.length;
      tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4 }, t('events.none')))]));
      count.textContent = t('events.count', { n: num(shown, 0) });
    } catch (err) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: 4 }, errorBox(err))));
    }
  }
  for (const s of [typeSel, assetSel, rangeSel]) s.addEventListener('change', load);
  await load();

  const matches = (e) => (!state.type || eventType(e) === state.type)
    && (!state.asset || e.asset === state.asset || e.asset.startsWith(`${state.asset}/`));
  return onLive((msg) => {
    const fresh = msg.events.filter((e) => matches(e) && !seen.has(e.id)).sort((a, b) => a.ts - b.ts);
    for (const e of fresh) seen.add(e.id);
    if (!fresh.length) return;
    if (shown === 0) tbody.replaceChildren();
    for (const e of fresh) {
      tbody.prepend(eventRow(e));
      shown += 1;
    }
    while (tbody.children.length > LIMIT) tbody.lastChild.remove();
    shown = Math.min(shown, LIMIT);
    count.textContent = t('events.count', { n: num(shown, 0) });
  });
}
