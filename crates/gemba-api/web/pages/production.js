// Production page: OEE (availability × performance × quality) of a site, line or machine over 8 h,
// 24 h or 7 d (GET /api/v1/oee), the six big losses as bars in minutes, OEE per machine, per hour /
// shift / day, and the causes of the losses (state reasons, alarms) with links to the alarms.
import { assetTree, getJSON, machines, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr, errorBox } from '../ui.js';

const RANGES = { '8h': 8 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3 };
const LOSSES = ['breakdowns_s', 'setup_s', 'other_stops_s', 'small_stops_s', 'reduced_speed_s', 'startup_rejects_s', 'production_rejects_s'];

const pct = (v) => (typeof v === 'number' ? `${num(100 * v, 1)} %` : '–');

function nodesOf(tree, level) {
  const out = [];
  const walk = (n) => {
    if (String(n.level || '').toLowerCase() === level) out.push(n);
    for (const c of n.children || []) walk(c);
  };
  walk(tree);
  return out;
}

function kpis(o) {
  return h('div.cards', { 'data-testid': 'oee-kpis' },
    ['oee', 'availability', 'performance', 'quality'].map((k) => h('div.card', { dataset: { kpi: k } },
      h('div.k', {}, t(`production.${k}`)), h('div.big', {}, pct(o[k])))));
}

/** The losses as horizontal bars in minutes, the fully productive time first. */
function waterfall(o) {
  const rows = [['production.fully_productive', o.fully_productive_s], ...LOSSES.map((k) => [`production.loss.${k}`, o.losses[k]])];
  const max = Math.max(o.planned_s, 1);
  return h('div.bars', { 'data-testid': 'oee-losses' },
    h('div.bar-row', {}, h('span.bar-label', {}, t('production.planned')),
      h('span.bar-track', {}, h('span.bar', { style: 'width:100%' })), h('span.bar-value', {}, `${num(o.planned_s / 60, 0)} min`)),
    rows.map(([key, s]) => h('div.bar-row', { dataset: { loss: key } },
      h('span.bar-label', {}, t(key)),
      h('span.bar-track', {}, h('span.bar', { style: `width:${Math.max(0, Math.min(100, (100 * s) / max)).toFixed(1)}%` })),
      h('span.bar-value', {}, `${num(s / 60, 1)} min`))));
}

export async function render(root) {
  const plant = await assetTree();
  const options = [...nodesOf(plant, 'site'), ...nodesOf(plant, 'line'), ...machines(plant)];
  const asset = h('select', { 'data-testid': 'oee-asset' }, options.map((n) => h('option', { value: n.path }, n.path)));
  const range = h('select', { 'data-testid': 'oee-range' }, Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === '24h' }, r)));
  const by = h('select', { 'data-testid': 'oee-by' }, ['hour', 'shift', 'day'].map((b) => h('option', { value: b, selected: b === 'shift' }, t(`production.by.${b}`))));
  const out = h('div');
  root.append(h('div.title', {}, tr('h1', 'production.title')),
    h('div.filters', {}, h('label', {}, t('common.asset'), ' ', asset), h('label', {}, t('production.range'), ' ', range), h('label', {}, t('production.by_label'), ' ', by)),
    out);

  async function load() {
    const to = Date.now();
    const from = to - RANGES[range.value];
    const t0 = performance.now();
    let r;
    try {
      r = await getJSON(`/api/v1/oee?${qs({ asset: asset.value, from, to, by: by.value })}`);
    } catch (e) {
      if (by.value === 'shift') {
        r = await getJSON(`/api/v1/oee?${qs({ asset: asset.value, from, to, by: 'hour' })}`).catch(() => null);
      }
      if (!r) { out.replaceChildren(errorBox(e)); return; }
    }
    window.gemba.oeeMs = Math.round(performance.now() - t0);
    const o = r.total;
    out.replaceChildren(
      kpis(o),
      h('div.panel', {}, tr('h2', 'production.losses'), waterfall(o)),
      h('div.panel', {}, tr('h2', 'production.machines'), h('table', { 'data-testid': 'oee-machines' },
        h('thead', {}, h('tr', {}, ['common.asset', 'production.oee', 'production.availability', 'production.performance', 'production.quality', 'production.good', 'production.scrap'].map((k) => tr('th', k)))),
        h('tbody', {}, r.machines.map((m) => h('tr', {},
          h('td', {}, h('a', { href: `#/machine/${m.machine}` }, m.machine)),
          h('td', {}, pct(m.oee)), h('td', {}, pct(m.availability)), h('td', {}, pct(m.performance)), h('td', {}, pct(m.quality)),
          h('td', {}, num(m.good, 0)), h('td', {}, num(m.scrap, 0))))))),
      h('div.panel', {}, tr('h2', 'production.causes'), r.causes.length
        ? h('ul', { 'data-testid': 'oee-causes' }, r.causes.slice(0, 15).map((c) => h('li', {},
          c.alarm ? h('a', { href: '#/alarms' }, c.text) : c.text)))
        : tr('p.muted', 'production.no_causes')),
      h('div.panel', {}, tr('h2', 'production.rows'), h('table', { 'data-testid': 'oee-rows' },
        h('thead', {}, h('tr', {}, ['production.from', 'production.shift', 'production.oee', 'production.availability', 'production.performance', 'production.quality'].map((k) => tr('th', k)))),
        h('tbody', {}, r.rows.map((x) => h('tr', {},
          h('td', {}, dateTime(x.from)), h('td', {}, x.shift || ''), h('td', {}, pct(x.oee)),
          h('td', {}, pct(x.availability)), h('td', {}, pct(x.performance)), h('td', {}, pct(x.quality))))))),
      h('p.muted', {}, t('production.cache', { cached: num(r.buckets_cached, 0), computed: num(r.buckets_computed, 0) })));
  }
  for (const el of [asset, range, by]) el.addEventListener('change', load);
  await load();
  const timer = setInterval(load, 60_000);
  return () => clearInterval(timer);
}
