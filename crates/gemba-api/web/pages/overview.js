// Plant overview: the asset tree site › area › line › machine, one live card per machine, and the
// failures / fault onsets of the last 24 h, and the open alarms (live). OEE does not exist yet: a
// marked placeholder.
import { assetTree, getJSON, latestUnder, latest, onLive, qs, level, signalName } from '../api.js';
import { t, num, clock, dateTime } from '../i18n.js';
import { h, tr, stateColour, stateLabel, signalLabel, valueText, typeLabel, eventType } from '../ui.js';
import { eventDetails } from './events.js';

const FAILURE_TYPES = ['custom:failure', 'custom:fault_onset'];
const SEVERITY_RANK = { low: 1, medium: 2, high: 3, critical: 4 };
const PREFERRED = ['spindle_speed', 'torque', 'tool_wear', 'vibration_rms', 'process_temp', 'pressure', 'power'];

/** Up to five signals worth showing on a card: preferred gauges first, then good parts. */
function keySignals(machine) {
  const sigs = machine.signals || [];
  const gauges = sigs.filter((s) => s.kind !== 'state' && s.kind !== 'counter' && s.kind !== 'boolean');
  gauges.sort((a, b) => {
    const ia = PREFERRED.indexOf(signalName(a.path));
    const ib = PREFERRED.indexOf(signalName(b.path));
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  const picked = gauges.slice(0, 4);
  const good = sigs.find((s) => signalName(s.path) === 'good_count');
  if (good) picked.push(good);
  return picked;
}

function machineCard(m, cells) {
  const stateSig = (m.signals || []).find((s) => s.kind === 'state');
  const badge = h('span.state', { 'data-testid': 'state' });
  const rows = keySignals(m).map((s) => {
    const value = h('span.value', { dataset: { signal: s.path } });
    cells.set(s.path, value);
    return h('div.kv', {}, h('span.k', {}, signalLabel(signalName(s.path))), value);
  });
  if (stateSig) cells.set(stateSig.path, badge);
  const card = h('a.card', { href: `#/machine/${m.path}`, 'data-testid': 'machine-card', dataset: { path: m.path } },
    h('div.card-head', {}, h('strong', {}, m.name), h('span.muted', {}, m.kind || ''), badge),
    ...rows);
  return card;
}

function paint(cell, v) {
  if (!cell) return;
  if (cell.classList.contains('state')) {
    const s = v?.state;
    cell.textContent = stateLabel(s);
    cell.style.background = stateColour(s);
    cell.closest('.card')?.style.setProperty('--state', stateColour(s));
    cell.dataset.state = s || '';
    return;
  }
  const text = valueText(v);
  if (cell.textContent !== text) {
    cell.textContent = text;
    cell.classList.remove('flash');
    void cell.offsetWidth; // restart the animation
    cell.classList.add('flash');
  }
}

function tree(node, cells) {
  const lvl = level(node);
  if (lvl === 'machine') return machineCard(node, cells);
  const kids = (node.children || []).map((c) => tree(c, cells));
  if (lvl === 'line') {
    return h('div.line', {}, h('h3', {}, h('span.lvl', {}, t('level.line')), ' ', node.name), h('div.cards', {}, kids));
  }
  if (lvl === 'area' || lvl === 'site') {
    const tag = lvl === 'site' ? 'h2' : 'h3';
    return h(`div.${lvl}`, {}, h(tag, {}, h('span.lvl', {}, t(`level.${lvl}`)), ' ', node.name), kids);
  }
  return h('div', {}, kids);
}

function failureItem(e) {
  const type = eventType(e);
  return h('li', { dataset: { type } },
    h('span.time', {}, dateTime(e.ts)), ' ',
    h('span.tag', { dataset: { type } }, typeLabel(type)), ' ',
    h('a', { href: `#/machine/${e.asset}` }, e.asset), ' ',
    h('span.muted', {}, eventDetails(e)));
}

export async function render(root) {
  const plant = await assetTree();
  const cells = new Map();
  const updated = h('span.muted', { 'data-testid': 'updated' });
  const ms = [];
  const walk = (n) => { if (level(n) === 'machine') ms.push(n); (n.children || []).forEach(walk); };
  walk(plant);
  const failures = h('ul.failures', { 'data-testid': 'failures' });
  const openAlarms = h('ul.failures', { 'data-testid': 'open-alarms' });
  const oeeBox = h('div', {}, tr('p.muted', 'overview.oee_loading'));
  // OEE of the last 24 h per machine, fetched after the first render (it may need computing).
  const loadOee = async () => {
    try {
      const now = Date.now();
      const site = level(plant) === 'site' ? plant : (plant.children || []).find((c) => level(c) === 'site');
      const r = await getJSON(`/api/v1/oee?${qs({ asset: site?.path || plant.path || '', from: now - 86400e3, to: now, by: 'day' })}`);
      const pct = (v) => (typeof v === 'number' ? `${num(100 * v, 1)} %` : '–');
      const byMachine = new Map(r.machines.map((m) => [m.machine, m]));
      for (const card of root.querySelectorAll('.card')) {
        const m = byMachine.get(card.dataset.path);
        let cell = card.querySelector('.oee');
        if (!cell) {
          cell = h('div.kv.oee', {}, h('span.k', {}, t('overview.oee')), h('span.value', {}));
          card.append(cell);
        }
        cell.querySelector('.value').textContent = pct(m?.oee);
      }
      oeeBox.replaceChildren(h('div.kv', { 'data-testid': 'plant-oee' }, h('span.k', {}, t('overview.oee_24h')), h('strong', {}, pct(r.total.oee))),
        h('div.kv', {}, h('span.k', {}, t('production.availability')), pct(r.total.availability)),
        h('div.kv', {}, h('span.k', {}, t('production.performance')), pct(r.total.performance)),
        h('div.kv', {}, h('span.k', {}, t('production.quality')), pct(r.total.quality)));
    } catch (e) {
      oeeBox.replaceChildren(h('p.muted', {}, t('common.error', { msg: e.message })));
    }
  };
  const loadAlarms = async () => {
    try {
      const { alarms } = await getJSON('/api/v1/alarms?state=active,acknowledged&limit=50');
      const marks = new Map();
      for (const a of alarms) marks.set(a.asset, Math.max(marks.get(a.asset) || 0, SEVERITY_RANK[a.severity] || 0));
      for (const card of root.querySelectorAll('.card')) card.dataset.alarm = marks.has(card.dataset.path) ? String(marks.get(card.dataset.path)) : '';
      openAlarms.replaceChildren(...(alarms.length ? alarms.map((a) => h('li', { dataset: { severity: a.severity } },
        h('span.sev', { dataset: { severity: a.severity } }, t(`alarms.severity.${a.severity}`)), ' ',
        h('a', { href: '#/alarms' }, a.message), ' ', h('span.muted', {}, dateTime(a.last_raised_at)))) : [tr('li.muted', 'overview.no_alarms')]));
    } catch { /* shown as stale */ }
  };
  root.append(
    h('div.title', {}, tr('h1', 'overview.title'), h('span.muted', {}, t('overview.machines', { n: num(ms.length, 0) })), updated),
    h('div.overview', {},
      h('div.plant', {}, tree(plant, cells)),
      h('aside', {},
        h('div.panel', {}, tr('h2', 'overview.failures'), failures),
        h('div.panel', { 'data-testid': 'overview-oee' }, h('h2', {}, h('a', { href: '#/production' }, t('overview.oee'))), oeeBox),
        h('div.panel', {}, h('h2', {}, h('a', { href: '#/alarms' }, t('overview.alarms_active'))), openAlarms))));

  // Values: what is known now, then live.
  const root0 = level(plant) === 'enterprise' ? '' : plant.path || '';
  for (const v of await latestUnder(root0)) paint(cells.get(v.signal), v);
  for (const [path, cell] of cells) if (!latest.has(path)) paint(cell, null);

  await loadAlarms();
  const now = Date.now();
  const lists = await Promise.all(FAILURE_TYPES.map((type) =>
    getJSON(`/api/v1/events?${qs({ type, from: now - 86400e3, to: now + 60000 })}`).catch(() => [])));
  const evs = lists.flat().sort((a, b) => b.ts - a.ts);
  const seen = new Set(evs.map((e) => e.id));
  const empty = tr('li.muted', 'overview.no_failures');
  failures.replaceChildren(...(evs.length ? evs.slice(0, 200).map(failureItem) : [empty]));

  loadOee();
  const oeeTimer = setInterval(loadOee, 60_000);
  const off = onLive((msg) => {
    for (const v of msg.latest) paint(cells.get(v.signal), v);
    updated.textContent = t('overview.updated', { time: clock(msg.ts) });
    if (msg.events.some((e) => eventType(e) === 'custom:alarm')) loadAlarms();
    for (const e of msg.events) {
      if (!FAILURE_TYPES.includes(eventType(e)) || seen.has(e.id)) continue;
      seen.add(e.id);
      if (empty.isConnected) empty.remove();
      failures.prepend(failureItem(e));
    }
  });
  return () => { off(); clearInterval(oeeTimer); };
}
