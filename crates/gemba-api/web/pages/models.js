// Models page: registered versions with their metrics and the active model per asset
// (GET /api/v1/models).
import { getJSON } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr } from '../ui.js';

/** The numeric metrics of an artefact, flattened to `a.b` keys (at most `max`). */
function metricList(metrics, max = 8) {
  const out = [];
  const walk = (v, key, depth) => {
    if (out.length >= max) return;
    if (typeof v === 'number') out.push([key, v]);
    else if (v && typeof v === 'object' && !Array.isArray(v) && depth < 2) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k, depth + 1);
    }
  };
  walk(metrics, '', 0);
  return out;
}

export async function render(root) {
  root.append(tr('h1', 'models.title'));
  const { versions, active } = await getJSON('/api/v1/models');
  const isActive = new Set(active.map((a) => `${a.name}@${a.version}@${a.asset}`));
  root.append(tr('h2', 'models.versions'));
  if (!versions.length) {
    root.append(tr('p.muted', 'models.none', { 'data-testid': 'models-empty' }));
  } else {
    root.append(h('table.models', { 'data-testid': 'models-table' },
      h('thead', {}, h('tr', {}, ['models.name', 'models.version', 'models.kind', 'common.asset', 'models.created', 'models.registered', 'models.features', 'models.classes', 'models.metrics'].map((k) => tr('th', k)))),
      h('tbody', {}, versions.map((v) => h('tr', { class: v.asset && isActive.has(`${v.name}@${v.version}@${v.asset}`) ? 'active' : '' },
        h('td', {}, v.name), h('td.num', {}, num(v.version, 0)), h('td', {}, v.kind), h('td', {}, v.asset || '–'),
        h('td', {}, Number.isNaN(Date.parse(v.created_at)) ? v.created_at : dateTime(Date.parse(v.created_at))), h('td', {}, dateTime(v.registered_at)),
        h('td', { title: v.features.join(', ') }, num(v.features.length, 0)), h('td', {}, v.classes.join(', ')),
        h('td.metrics', {}, metricList(v.metrics).map(([k, x]) => h('span.metric', {}, `${k} ${num(x, 3)}`))))))));
  }
  root.append(tr('h2', 'models.active'));
  if (!active.length) {
    root.append(tr('p.muted', 'models.no_active'));
  } else {
    root.append(h('table.models', {},
      h('thead', {}, h('tr', {}, ['common.asset', 'models.name', 'models.version', 'models.since'].map((k) => tr('th', k)))),
      h('tbody', {}, active.map((a) => h('tr', {},
        h('td', {}, h('a', { href: `#/machine/${a.asset}` }, a.asset)), h('td', {}, a.name),
        h('td.num', {}, num(a.version, 0)), h('td', {}, dateTime(a.since)))))));
  }
  return null;
}
