// Maintenance page: work orders (GET /api/v1/work-orders) filtered by state, one order with its
// parts, notes and history and the actions that its state allows (assign, start, done, note,
// parts: POST /api/v1/work-orders/{id}/{action}), a form for a new order, and MTBF / MTTR of the
// order's machine over 30 days (GET /api/v1/maintenance).
import { assetTree, getJSON, machines, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr, errorBox } from '../ui.js';

const STATES = ['open', 'assigned', 'in_progress', 'done', 'all'];

function userName() {
  return localStorage.getItem('gemba.user') || 'operator';
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(b?.error?.message || `${r.status}`);
  return b;
}

const hours = (s) => (typeof s === 'number' ? `${num(s / 3600, 1)} h` : '–');

async function detail(w, refresh) {
  const err = h('p.error', { hidden: true });
  const text = h('input', { type: 'text', 'data-testid': 'wo-text', placeholder: t('maintenance.text') });
  const who = h('input', { type: 'text', size: 10, 'data-testid': 'wo-assignee', placeholder: t('maintenance.assignee') });
  const run = async (action, extra) => {
    err.hidden = true;
    try {
      await post(`/api/v1/work-orders/${w.id}/${action}`, { by: userName(), ...(text.value.trim() ? { text: text.value.trim() } : {}), ...extra });
      await refresh(w.id);
    } catch (e) { err.hidden = false; err.textContent = t('common.error', { msg: e.message }); }
  };
  const part = h('input', { type: 'text', size: 14, placeholder: t('maintenance.part') });
  const btn = (key, action, extra) => h('button', { 'data-testid': `wo-${action}`, onclick: () => run(action, extra?.()) }, t(key));
  let stats = null;
  try {
    const m = await getJSON(`/api/v1/maintenance?${qs({ machine: w.machine })}`);
    stats = h('p', { 'data-testid': 'wo-mtbf' }, t('maintenance.stats', { mtbf: hours(m.mtbf_s), mttr: hours(m.mttr_s), n: num(m.breakdowns, 0) }));
  } catch { /* not a machine */ }
  return h('div.panel', { 'data-testid': 'wo-detail' },
    h('h2', {}, `#${w.id} ${w.title}`),
    h('div.kv', {}, h('span.k', {}, t('common.asset')), h('a', { href: `#/machine/${w.machine}` }, w.machine)),
    h('div.kv', {}, h('span.k', {}, t('maintenance.state')), t(`maintenance.state.${w.state}`)),
    w.alarm ? h('div.kv', {}, h('span.k', {}, t('maintenance.alarm')), h('a', { href: '#/alarms' }, `#${w.alarm}`)) : null,
    w.assignee ? h('div.kv', {}, h('span.k', {}, t('maintenance.assignee')), w.assignee) : null,
    w.description ? h('p', {}, w.description) : null,
    stats,
    h('div.actions', {},
      ['open', 'assigned'].includes(w.state) ? [who, btn('maintenance.assign', 'assign', () => ({ assignee: who.value.trim() }))] : null,
      w.state === 'assigned' ? btn('maintenance.start', 'start') : null,
      w.state === 'in_progress' ? btn('maintenance.done', 'done') : null,
      text, btn('maintenance.note', 'note'),
      w.state !== 'done' ? [part, btn('maintenance.add_part', 'parts', () => ({ parts: [{ name: part.value.trim(), quantity: 1 }] }))] : null),
    err,
    w.parts.length ? h('div', {}, tr('h4', 'maintenance.parts'), h('ul', {}, w.parts.map((p) => h('li', {}, `${num(p.quantity, 2)} × ${p.name}`)))) : null,
    w.notes.length ? h('div', {}, tr('h4', 'maintenance.notes'), h('ul', {}, w.notes.map((n) => h('li', {}, h('strong', {}, n.by), ` ${dateTime(n.at)}: ${n.text}`)))) : null,
    h('details', {}, h('summary', {}, t('maintenance.history')),
      h('ul', {}, w.history.map((x) => h('li', {}, `${dateTime(x.at)} ${x.what} (${x.by})`)))));
}

export async function render(root) {
  const plant = await assetTree();
  const state = h('select', { 'data-testid': 'wo-state' }, STATES.map((s) => h('option', { value: s }, t(`maintenance.state.${s}`))));
  const list = h('tbody');
  const side = h('div');
  const machine = h('select', {}, machines(plant).map((m) => h('option', { value: m.path }, m.path)));
  const title = h('input', { type: 'text', size: 30, 'data-testid': 'wo-title', placeholder: t('maintenance.title_placeholder') });
  const formErr = h('p.error', { hidden: true });
  const create = async () => {
    formErr.hidden = true;
    try {
      const w = await post('/api/v1/work-orders', { machine: machine.value, title: title.value.trim(), by: userName() });
      title.value = '';
      await load(w.id);
    } catch (e) { formErr.hidden = false; formErr.textContent = t('common.error', { msg: e.message }); }
  };
  root.append(h('div.title', {}, tr('h1', 'maintenance.title')),
    h('div.filters', {}, h('label', {}, t('maintenance.state'), ' ', state)),
    h('div.filters', {}, machine, ' ', title, ' ', h('button', { 'data-testid': 'wo-create', onclick: create }, t('maintenance.create')), formErr),
    h('div.alarms-layout', {},
      h('div.table-wrap', {}, h('table', { 'data-testid': 'wo-table' },
        h('thead', {}, h('tr', {}, ['maintenance.id', 'maintenance.state', 'common.asset', 'maintenance.title_label', 'maintenance.assignee', 'maintenance.created'].map((k) => tr('th', k)))),
        list)),
      side));

  async function showDetail(id) {
    try { side.replaceChildren(await detail(await getJSON(`/api/v1/work-orders/${id}`), load)); } catch (e) { side.replaceChildren(errorBox(e)); }
  }
  async function load(focus) {
    try {
      const r = await getJSON(`/api/v1/work-orders?${qs({ state: state.value === 'open' ? 'open' : state.value })}`);
      list.replaceChildren(...r.work_orders.map((w) => h('tr', { dataset: { id: w.id }, onclick: () => showDetail(w.id) },
        h('td', {}, `#${w.id}`), h('td', {}, t(`maintenance.state.${w.state}`)), h('td', {}, w.machine), h('td', {}, w.title),
        h('td', {}, w.assignee || '–'), h('td', {}, dateTime(w.created.at)))));
      if (!r.work_orders.length) list.append(h('tr', {}, h('td', { colspan: 6 }, t('maintenance.none'))));
      if (focus) await showDetail(focus);
    } catch (e) { side.replaceChildren(errorBox(e)); }
  }
  state.addEventListener('change', () => load());
  await load();
  const timer = setInterval(() => load(), 10_000);
  return () => clearInterval(timer);
}
