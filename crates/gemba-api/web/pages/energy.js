// Energy page: kWh, idle kWh and kWh per good part per machine, line and site per shift, day or
// month (GET /api/v1/energy/report), and kWh and CO2e per lot and product (GET /api/v1/energy/lots).
import { getJSON, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr, errorBox } from '../ui.js';

const DAY = 86400000;

export async function render(root) {
  root.append(tr('h1', 'energy.title'));
  const by = h('select', { 'data-testid': 'energy-by' }, ['shift', 'day', 'month', 'total'].map((b) => h('option', { value: b }, t(`energy.by_${b}`))));
  by.value = 'shift';
  const level = h('select', {}, ['line', 'machine', 'site'].map((l) => h('option', { value: l }, t(`energy.level_${l}`))));
  const reportBox = h('div', {});
  const lotsBox = h('div', {});
  const csvLink = h('a', { download: 'energy.csv' }, t('logistics.csv'));
  const load = async () => {
    reportBox.replaceChildren(tr('p.muted', 'common.loading'));
    const params = { by: by.value, from: Date.now() - DAY };
    csvLink.href = `/api/v1/energy/report?${qs({ ...params, format: 'csv' })}`;
    try {
      const r = await getJSON(`/api/v1/energy/report?${qs(params)}`);
      const rows = r.rows.filter((x) => x.level === level.value);
      window.gemba.energyRows = rows.length;
      window.gemba.kwhPerGood = rows.map((x) => x.kwh_per_good).filter((x) => x !== null);
      reportBox.replaceChildren(rows.length ? h('table.energy', { 'data-testid': 'energy-table' },
        h('thead', {}, h('tr', {}, ['energy.period', 'common.asset', 'energy.kwh', 'energy.idle', 'energy.good', 'energy.kwh_per_good', 'energy.co2e'].map((k) => tr('th', k)))),
        h('tbody', {}, rows.map((x) => h('tr', {}, h('td', {}, x.period), h('td', {}, x.asset), h('td.num', {}, num(x.kwh, 2)),
          h('td.num', {}, num(x.idle_kwh, 2)), h('td.num', {}, num(x.good, 0)),
          h('td.num', { 'data-testid': 'kwh-per-good' }, x.kwh_per_good === null ? '–' : num(x.kwh_per_good, 4)),
          h('td.num', {}, x.co2e_kg === null ? '–' : num(x.co2e_kg, 2))))))
        : tr('p.muted', 'energy.none'));
      if (!r.co2e_configured) reportBox.append(tr('p.muted', 'energy.no_factor'));
    } catch (err) {
      reportBox.replaceChildren(errorBox(err));
    }
  };
  by.addEventListener('change', load);
  level.addEventListener('change', load);
  root.append(tr('h2', 'energy.report'), h('div.filters', {}, h('label', {}, t('energy.by'), ' ', by), h('label', {}, t('energy.level'), ' ', level), csvLink), reportBox,
    tr('h2', 'energy.per_lot'), lotsBox);
  await load();
  lotsBox.replaceChildren(tr('p.muted', 'common.loading'));
  try {
    const e = await getJSON(`/api/v1/energy/lots?${qs({ from: Date.now() - DAY })}`);
    // A consumed lot's energy is part of the lot made from it: list the lots that were not consumed.
    const lots = e.lots.filter((l) => l.kwh > 0 && !l.consumed_by).slice(-30).reverse();
    window.gemba.co2ePerLot = lots.map((l) => l.co2e_kg).filter((x) => x !== null);
    lotsBox.replaceChildren(
      lots.length ? h('table.energy', { 'data-testid': 'lot-energy-table' },
        h('thead', {}, h('tr', {}, ['logistics.lot', 'logistics.product', 'logistics.quantity', 'logistics.created', 'energy.kwh', 'energy.kwh_per_unit', 'energy.co2e', 'energy.co2e_per_unit'].map((k) => tr('th', k)))),
        h('tbody', {}, lots.map((l) => h('tr', {}, h('td', {}, l.lot), h('td', {}, l.product), h('td.num', {}, `${num(l.quantity, 0)} ${l.unit}`),
          h('td', {}, dateTime(l.created)), h('td.num', {}, num(l.kwh, 2)), h('td.num', {}, l.kwh_per_unit === null ? '–' : num(l.kwh_per_unit, 4)),
          h('td.num', { 'data-testid': 'co2e-per-lot' }, l.co2e_kg === null ? '–' : num(l.co2e_kg, 2)),
          h('td.num', {}, l.co2e_kg_per_unit === null ? '–' : num(l.co2e_kg_per_unit, 4))))))
        : tr('p.muted', 'energy.no_lots'),
      tr('h3', 'energy.per_product'),
      h('table.energy', {}, h('thead', {}, h('tr', {}, ['logistics.product', 'logistics.lots', 'logistics.quantity', 'energy.kwh', 'energy.kwh_per_unit', 'energy.co2e'].map((k) => tr('th', k)))),
        h('tbody', {}, e.products.map((p) => h('tr', {}, h('td', {}, p.product), h('td.num', {}, num(p.lots, 0)), h('td.num', {}, num(p.quantity, 0)),
          h('td.num', {}, num(p.kwh, 2)), h('td.num', {}, p.kwh_per_unit === null ? '–' : num(p.kwh_per_unit, 4)),
          h('td.num', {}, p.co2e_kg === null ? '–' : num(p.co2e_kg, 2)))))));
  } catch (err) {
    lotsBox.replaceChildren(errorBox(err));
  }
  return null;
}
