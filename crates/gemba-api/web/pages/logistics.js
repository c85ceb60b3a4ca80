// Logistics page: inventory and WIP per location and product (now or as of a time), the lots,
// dwell times and a lot's genealogy with its process data (GET /api/v1/logistics/…, /genealogy).
import { getJSON, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr, errorBox, typeLabel, eventType } from '../ui.js';

const DAY = 86400000;

function inventoryTable(rows) {
  if (!rows.length) return tr('p.muted', 'logistics.no_stock');
  return h('table.inventory', { 'data-testid': 'inventory-table' },
    h('thead', {}, h('tr', {}, ['logistics.location', 'logistics.kind', 'logistics.product', 'logistics.quantity', 'logistics.lots'].map((k) => tr('th', k)))),
    h('tbody', {}, rows.map((r) => h('tr', {},
      h('td', {}, r.location), h('td', {}, t(`logistics.kind_${r.kind}`)), h('td', {}, r.product),
      h('td.num', {}, num(r.quantity, 2)), h('td.num', {}, r.lots === undefined ? '–' : num(r.lots, 0))))));
}

function stays(list) {
  return list.map((s) => `${s.location} (${dateTime(s.start)} – ${s.end ? dateTime(s.end) : t('logistics.now')})`).join(' → ');
}

async function showGenealogy(box, lot, direction) {
  box.replaceChildren(tr('p.muted', 'common.loading'));
  try {
    const g = await getJSON(`/api/v1/genealogy/${encodeURIComponent(lot)}?${qs({ direction })}`);
    window.gemba.genealogy = { lot, direction, lots: g.lots.length, windows: g.process.length };
    const csv = `/api/v1/genealogy/${encodeURIComponent(lot)}?${qs({ direction, format: 'csv' })}`;
    box.replaceChildren(
      h('p', {}, h('a', { href: csv, download: `genealogy-${lot}.csv` }, t('logistics.csv'))),
      h('table.genealogy', { 'data-testid': 'genealogy-table' },
        h('thead', {}, h('tr', {}, ['logistics.lot', 'logistics.product', 'logistics.quantity', 'logistics.depth', 'logistics.path'].map((k) => tr('th', k)))),
        h('tbody', {}, g.lots.map((n) => h('tr', {},
          h('td', {}, '\u00a0\u00a0'.repeat(n.depth) + n.lot), h('td', {}, n.product),
          h('td.num', {}, `${num(n.quantity, 2)} ${n.unit}`), h('td.num', {}, num(n.depth, 0)), h('td', {}, stays(n.stays)))))),
      tr('h3', 'logistics.process'),
      g.process.length ? h('div', {}, g.process.slice(0, 20).map((w) => h('details.process', {},
        h('summary', {}, `${w.lot} @ ${w.asset}: ${dateTime(w.start)} – ${dateTime(w.end)} · ${t('logistics.n_events', { n: w.events.length })}`),
        h('table', {}, h('tbody', {}, w.signals.map((s) => h('tr', {},
          h('td', {}, s.signal), h('td.num', {}, num(s.count, 0)), h('td.num', {}, num(s.min, 3)),
          h('td.num', {}, num(s.mean, 3)), h('td.num', {}, num(s.max, 3)), h('td', {}, s.unit || ''))))),
        h('ul', {}, w.events.slice(0, 50).map((e) => h('li', {}, `${dateTime(e.ts)} ${e.asset} ${typeLabel(eventType(e))}${e.state ? ` ${e.state}` : ''}${e.good !== undefined ? ` +${e.good}` : ''}`))))))
        : tr('p.muted', 'logistics.no_process'));
    const inspBox = h('div', { 'data-testid': 'genealogy-inspections' }, tr('p.muted', 'common.loading'));
    box.append(tr('h3', 'logistics.inspections'), inspBox);
    await lotInspections(inspBox, g.lots.slice(0, 20).map((n) => n.lot));
  } catch (err) {
    box.replaceChildren(errorBox(err));
  }
}

/** Visual inspections of the genealogy's lots (GET /api/v1/inspections?lot=…): counts, fails, the latest. */
async function lotInspections(box, lots) {
  const rows = [];
  for (const lot of lots) {
    const r = await getJSON(`/api/v1/inspections?${qs({ lot, limit: 10000 })}`);
    if (r.inspections.length) rows.push([lot, r.inspections]);
  }
  box.replaceChildren(rows.length
    ? h('table', {}, h('thead', {}, h('tr', {}, ['logistics.lot', 'logistics.inspected', 'logistics.failed', 'logistics.latest'].map((k) => tr('th', k)))),
      h('tbody', {}, rows.map(([lot, xs]) => h('tr', {}, h('td', {}, lot), h('td.num', {}, num(xs.length, 0)),
        h('td.num', {}, num(xs.filter((x) => x.verdict === 'fail').length, 0)),
        h('td', {}, h('img.thumb', { src: xs[0].heat_map_url, alt: t('quality.heat_map'), width: 32, height: 32 }),
          ' ', t(`quality.verdict_${xs[0].verdict}`), ` ${xs[0].part || ''} ${dateTime(xs[0].ts)}`)))))
    : tr('p.muted', 'logistics.no_inspections'));
}

export async function render(root) {
  root.append(tr('h1', 'logistics.title'));
  const at = h('input', { type: 'datetime-local', 'data-testid': 'inventory-at' });
  const kind = h('select', { 'data-testid': 'inventory-kind' }, h('option', { value: '' }, t('common.all')),
    h('option', { value: 'wip' }, t('logistics.kind_wip')), h('option', { value: 'store' }, t('logistics.kind_store')));
  const invBox = h('div', {});
  const loadInventory = async () => {
    invBox.replaceChildren(tr('p.muted', 'common.loading'));
    const when = at.value ? Date.parse(at.value) : undefined;
    try {
      const inv = await getJSON(`/api/v1/logistics/inventory?${qs({ at: when, kind: kind.value })}`);
      window.gemba.inventoryRows = inv.rows.length;
      invBox.replaceChildren(inventoryTable(inv.rows));
    } catch (err) {
      invBox.replaceChildren(errorBox(err));
    }
  };
  at.addEventListener('change', loadInventory);
  kind.addEventListener('change', loadInventory);
  root.append(tr('h2', 'logistics.inventory'),
    h('div.filters', {}, h('label', {}, t('logistics.as_of'), ' ', at), h('label', {}, t('logistics.kind'), ' ', kind),
      h('a', { href: '/api/v1/logistics/inventory?format=csv', download: 'inventory.csv' }, t('logistics.csv'))),
    invBox);

  const genBox = h('div', { 'data-testid': 'genealogy' });
  const lotInput = h('input', { type: 'text', placeholder: t('logistics.lot'), 'data-testid': 'genealogy-lot' });
  const dir = h('select', { 'data-testid': 'genealogy-direction' },
    h('option', { value: 'backward' }, t('logistics.backward')), h('option', { value: 'forward' }, t('logistics.forward')));
  const go = () => lotInput.value && showGenealogy(genBox, lotInput.value.trim(), dir.value);
  root.append(tr('h2', 'logistics.genealogy'),
    h('div.filters', {}, lotInput, dir, h('button', { onclick: go, 'data-testid': 'genealogy-go' }, t('logistics.show'))), genBox);

  const lotsBox = h('div', {});
  const dwellBox = h('div', {});
  root.append(tr('h2', 'logistics.lots_title'), lotsBox, tr('h2', 'logistics.dwell'), dwellBox);
  await loadInventory();
  try {
    const lots = await getJSON('/api/v1/logistics/lots?limit=30');
    window.gemba.lots = lots.length;
    lotsBox.replaceChildren(lots.length ? h('table.lots', { 'data-testid': 'lots-table' },
      h('thead', {}, h('tr', {}, ['logistics.lot', 'logistics.product', 'logistics.quantity', 'logistics.created', 'logistics.where'].map((k) => tr('th', k)))),
      h('tbody', {}, lots.map((l) => h('tr', {},
        h('td', {}, h('a', { href: '#/logistics', onclick: (ev) => { ev.preventDefault(); lotInput.value = l.lot; go(); } }, l.lot)),
        h('td', {}, l.product), h('td.num', {}, `${num(l.quantity, 2)} ${l.unit}`), h('td', {}, dateTime(l.created)),
        h('td', {}, l.consumed_by ? t('logistics.consumed_by', { lot: l.consumed_by }) : l.positions.map((p) => `${p.location} ${num(p.quantity, 2)}`).join(', '))))))
      : tr('p.muted', 'logistics.no_lots'));
    const dwell = await getJSON(`/api/v1/logistics/dwell?${qs({ from: Date.now() - DAY })}`);
    dwellBox.replaceChildren(dwell.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['logistics.location', 'logistics.stays', 'logistics.mean', 'logistics.max', 'logistics.open'].map((k) => tr('th', k)))),
      h('tbody', {}, dwell.map((d) => h('tr', {}, h('td', {}, d.location), h('td.num', {}, num(d.stays, 0)),
        h('td.num', {}, d.mean_s === null ? '–' : num(d.mean_s / 60, 1)), h('td.num', {}, d.max_s === null ? '–' : num(d.max_s / 60, 1)),
        h('td.num', {}, num(d.open, 0))))))
      : tr('p.muted', 'logistics.no_stock'));
    if (lots.length && !lotInput.value) {
      const finished = lots.find((l) => l.inputs.length) || lots[0];
      lotInput.value = finished.lot;
      await showGenealogy(genBox, finished.lot, 'backward');
    }
  } catch (err) {
    lotsBox.replaceChildren(errorBox(err));
  }
  return null;
}
