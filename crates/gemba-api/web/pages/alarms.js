// Alarms page: the alarm list (GET /api/v1/alarms) with state / severity / asset filters, live
// refresh when an alarm is raised or cleared (custom:alarm events on the stream) and every 5 s for
// changes by other people; one alarm's explanation (rule, values, contributing signals as bars),
// comments and history; acknowledge, comment and close (POST /api/v1/alarms/{id}/{action}); the
// notification outbox (GET /api/v1/notifications): each delivery to a webhook or e-mail channel
// with its state, attempts, next attempt and last error.
import { assetTree, getJSON, machines, onLive, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr, errorBox, eventType } from '../ui.js';

const STATES = ['open', 'active', 'acknowledged', 'cleared', 'closed', 'all'];
const SEVERITIES = ['', 'low', 'medium', 'high', 'critical'];

/** The name actions are signed with (until users and logins exist), kept in localStorage. */
function userName() {
  return localStorage.getItem('gemba.user') || 'operator';
}

async function act(id, action, text) {
  const r = await fetch(`/api/v1/alarms/${id}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ by: userName(), ...(text ? { text } : {}) }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body?.error?.message || `${r.status}`);
  return body;
}

function severityTag(s) {
  return h('span.sev', { dataset: { severity: s } }, t(`alarms.severity.${s}`));
}

function stateTag(s) {
  return h('span.astate', { dataset: { state: s } }, t(`alarms.state.${s}`));
}

function fmt(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  return num(v, a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}

/** The explanation: rule, limits, contributing signals as a bar chart, and the readings. */
function explanation(a) {
  const ex = a.explanation || {};
  const bars = (ex.contributions || []).slice(0, 8).map((c) => {
    const pct = Math.max(0, Math.min(100, 100 * c.contribution));
    return h('div.bar-row', { 'data-testid': 'contribution', dataset: { signal: c.signal } },
      h('span.bar-label', { title: c.signal }, c.signal.slice(c.signal.lastIndexOf('/') + 1)),
      h('span.bar-track', {}, h('span.bar', { style: `width:${pct.toFixed(1)}%` })),
      h('span.bar-value', {}, `${num(pct, 0)} %`),
      h('span.muted', {}, `${fmt(c.value)}${c.expected !== undefined ? ` (${t('alarms.expected')} ${fmt(c.expected)})` : ''}`));
  });
  const limits = ex.limits ? Object.entries(ex.limits).map(([k, v]) => h('span.metric', {}, `${k} ${fmt(v)}`)) : [];
  const values = (ex.values || []).slice(-15).map((v) => h('li', {}, h('span.time', {}, dateTime(v.ts)), ' ',
    v.signal.slice(v.signal.lastIndexOf('/') + 1), ' = ', fmt(v.value)));
  return h('div.explanation', { 'data-testid': 'explanation' },
    tr('h3', 'alarms.why'),
    h('p.rule', { 'data-testid': 'explanation-rule' }, ex.rule || ''),
    limits.length ? h('p', {}, limits) : null,
    bars.length ? h('div', {}, tr('h4', 'alarms.contributions'), h('div.bars', {}, bars)) : null,
    values.length ? h('div', {}, tr('h4', 'alarms.values'), h('ul.readings', {}, values)) : null);
}

function detail(a, refresh) {
  const box = h('div.alarm-detail.panel', { 'data-testid': 'alarm-detail', dataset: { id: a.id } });
  const err = h('p.error', { hidden: true });
  const run = async (action, text) => {
    err.hidden = true;
    try {
      await act(a.id, action, text);
      await refresh(a.id);
    } catch (e) {
      err.hidden = false;
      err.textContent = t('common.error', { msg: e.message });
    }
  };
  const comment = h('input', { type: 'text', 'data-testid': 'comment-text', placeholder: t('alarms.comment_placeholder') });
  const buttons = h('div.actions', {},
    a.state === 'active' || (a.state === 'cleared' && !a.acknowledged)
      ? h('button', { 'data-testid': 'ack', onclick: () => run('ack', comment.value.trim()) }, t('alarms.ack')) : null,
    a.state === 'cleared' ? h('button', { 'data-testid': 'close', onclick: () => run('close', comment.value.trim()) }, t('alarms.close')) : null,
    comment,
    h('button', { 'data-testid': 'comment', onclick: () => comment.value.trim() && run('comment', comment.value.trim()) }, t('alarms.comment')));
  const stamp = (label, s) => (s ? h('div.kv', {}, h('span.k', {}, t(label)), h('span', {}, `${s.by}, ${dateTime(s.at)}`)) : null);
  box.append(...[
    h('h2', {}, severityTag(a.severity), ' ', `#${a.id} `, a.message),
    h('div.kv', {}, h('span.k', {}, t('alarms.state_label')), stateTag(a.state)),
    h('div.kv', {}, h('span.k', {}, t('common.asset')), h('a', { href: `#/machine/${a.asset}` }, a.asset)),
    h('div.kv', {}, h('span.k', {}, t('alarms.rule')), `${a.rule} (${a.rule_type})`),
    h('div.kv', {}, h('span.k', {}, t('alarms.raised')), `${dateTime(a.raised_at)}${a.count > 1 ? ` · ${t('alarms.times', { n: num(a.count, 0) })}` : ''}`),
    a.cleared_at ? h('div.kv', {}, h('span.k', {}, t('alarms.cleared_at')), dateTime(a.cleared_at)) : null,
    stamp('alarms.acked_by', a.acknowledged),
    stamp('alarms.closed_by', a.closed),
    buttons, err,
    explanation(a),
    a.comments.length ? h('div', {}, tr('h4', 'alarms.comments'),
      h('ul.comments', { 'data-testid': 'comments' }, a.comments.map((c) => h('li', {}, h('strong', {}, c.by), ` ${dateTime(c.at)}: `, c.text)))) : null,
    h('details', {}, h('summary', {}, t('alarms.history')),
      h('ul', {}, a.history.map((x) => h('li', {}, `${dateTime(x.at)} ${t(`alarms.what.${x.what}`)}${x.by ? ` (${x.by})` : ''}`)))),
  ].filter(Boolean));
  return box;
}

/** The latest deliveries of the notification outbox, refreshed with the alarm list. */
function notificationsPanel() {
  const counts = h('span.muted', { 'data-testid': 'notify-counts' });
  const body = h('tbody');
  const cols = ['time', 'channel', 'event', 'alarm', 'state', 'attempts', 'next', 'error'];
  const panel = h('section.notifications', { 'data-testid': 'notifications' },
    h('div.title', {}, tr('h2', 'alarms.notifications'), counts),
    h('div.table-wrap', {}, h('table', { 'data-testid': 'notifications-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => tr('th', `alarms.notify.${c}`)))), body)));
  async function load() {
    try {
      const res = await getJSON('/api/v1/notifications?limit=20');
      counts.textContent = t('alarms.notify_counts', {
        pending: num(res.counts.pending, 0), sent: num(res.counts.sent, 0), expired: num(res.counts.expired, 0),
      });
      const empty = res.channels.length ? 'alarms.notify_empty' : 'alarms.notify_none';
      body.replaceChildren(...(res.notifications.length ? res.notifications.map((d) => h('tr', {
        'data-testid': 'notification-row', dataset: { state: d.state, channel: d.channel, id: d.id },
      },
      h('td.when', {}, dateTime(d.created_at)),
      h('td', {}, `${d.channel} (${d.kind})`),
      h('td', {}, t(`alarms.what.${d.event}`)),
      h('td.num', {}, `#${d.alarm_id}`),
      h('td', { class: `nstate ${d.state}` }, t(`alarms.notify.state.${d.state}`)),
      h('td.num', {}, num(d.attempts, 0)),
      h('td.when', {}, d.sent_at ? dateTime(d.sent_at) : d.next_attempt_at ? dateTime(d.next_attempt_at) : '–'),
      h('td.msg', { title: d.last_error || '' }, d.last_error || ''))) : [h('tr', {}, h('td', { colspan: cols.length }, tr('span.muted', empty)))]));
    } catch (e) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: cols.length }, errorBox(e))));
    }
  }
  return { panel, load };
}

export async function render(root) {
  const plant = await assetTree();
  const state = h('select', { 'data-testid': 'alarm-state' }, STATES.map((s) => h('option', { value: s }, t(`alarms.filter.${s}`))));
  const severity = h('select', { 'data-testid': 'alarm-severity' }, SEVERITIES.map((s) => h('option', { value: s }, s ? t(`alarms.severity.${s}`) : t('common.all'))));
  const asset = h('select', {}, h('option', { value: '' }, t('common.all')), machines(plant).map((m) => h('option', { value: m.path }, m.path)));
  const user = h('input', { type: 'text', value: userName(), size: 12, 'data-testid': 'alarm-user', onchange: () => localStorage.setItem('gemba.user', user.value.trim() || 'operator') });
  const count = h('span.muted', { 'data-testid': 'alarm-count' });
  const list = h('tbody');
  const side = h('div.alarm-side');
  let selected = null;
  let version = 0;
  const outbox = notificationsPanel();

  root.append(
    h('div.title', {}, tr('h1', 'alarms.title'), count),
    h('div.filters', {},
      h('label', {}, t('alarms.state_label'), ' ', state),
      h('label', {}, t('alarms.min_severity'), ' ', severity),
      h('label', {}, t('common.asset'), ' ', asset),
      h('label', {}, t('alarms.you'), ' ', user)),
    h('div.alarms-layout', {},
      h('div.table-wrap', {}, h('table.alarms', { 'data-testid': 'alarms-table' },
        h('thead', {}, h('tr', {}, ['alarms.severity_label', 'alarms.state_label', 'common.asset', 'alarms.message', 'alarms.raised', 'alarms.count'].map((k) => tr('th', k)))),
        list)),
      side),
    outbox.panel);

  async function showDetail(id) {
    selected = id;
    for (const row of list.children) row.classList.toggle('selected', row.dataset.id === String(id));
    try {
      const a = await getJSON(`/api/v1/alarms/${id}`);
      side.replaceChildren(detail(a, load));
    } catch (e) {
      side.replaceChildren(errorBox(e));
    }
  }

  async function load(focus) {
    const q = qs({ state: state.value, severity: severity.value, asset: asset.value, limit: 500 });
    try {
      const res = await getJSON(`/api/v1/alarms?${q}`);
      version = res.version;
      count.textContent = t('alarms.n', { n: num(res.alarms.length, 0) });
      list.replaceChildren(...(res.alarms.length ? res.alarms.map((a) => h('tr', {
        'data-testid': 'alarm-row',
        dataset: { id: a.id, state: a.state, rule: a.rule },
        class: a.id === selected ? 'selected' : '',
        onclick: () => showDetail(a.id),
      },
      h('td', {}, severityTag(a.severity)), h('td', {}, stateTag(a.state)),
      h('td', {}, a.asset.slice(a.asset.lastIndexOf('/') + 1)),
      h('td.msg', { title: a.message }, a.message),
      h('td.when', {}, dateTime(a.last_raised_at)), h('td.num', {}, num(a.count, 0)))) : [h('tr', {}, h('td', { colspan: 6 }, tr('span.muted', 'alarms.none', { 'data-testid': 'alarms-empty' })))]));
      if (focus !== undefined) await showDetail(focus);
      outbox.load();
    } catch (e) {
      list.replaceChildren(h('tr', {}, h('td', { colspan: 6 }, errorBox(e))));
    }
  }

  for (const el of [state, severity, asset]) el.addEventListener('change', () => load());
  await load();
  // Raises and clears come as events on the live stream; acknowledgements by others are seen by
  // the version check every 5 s.
  const off = onLive((msg) => {
    if (msg.events.some((e) => eventType(e) === 'custom:alarm')) load(selected ?? undefined);
  });
  const timer = setInterval(async () => {
    try {
      const res = await getJSON('/api/v1/alarms?limit=1');
      if (res.version !== version) load(selected ?? undefined);
      else outbox.load();
    } catch { /* the live indicator shows the connection state */ }
  }, 5000);
  return () => { off(); clearInterval(timer); };
}
