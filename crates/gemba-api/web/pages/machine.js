// Machine page: live values with units and spec limits, a uPlot chart of any signal (raw samples
// for 1 h, server-side aggregates — mean line in a min–max band — for longer ranges; drag to zoom,
// Back, pan), the state timeline from the `state` signal, production from good/scrap counters and
// energy from the energy counter.
import { assetTree, findNode, getJSON, latestUnder, onLive, qs, level, signalName } from '../api.js';
import { t, num, dateTime, duration, getLocale } from '../i18n.js';
import { h, tr, stateColour, stateLabel, signalLabel, valueText, errorBox } from '../ui.js';

const RANGES = { '1h': 3600e3, '8h': 8 * 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
const RAW_MAX_SPAN = 3600e3 + 1000;
const NICE = [60e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3, 43200e3, 86400e3];

/** A step giving about `n` buckets over `span`, from NICE (whole minutes or more). */
function niceStep(span, n) {
  return NICE.find((s) => span / s <= n) ?? 86400e3;
}

function axisFormatter(span) {
  const loc = getLocale();
  const f = span > 2 * 86400e3
    ? new Intl.DateTimeFormat(loc, { month: 'short', day: 'numeric', hour: '2-digit' })
    : span > 12 * 3600e3
      ? new Intl.DateTimeFormat(loc, { weekday: 'short', hour: '2-digit', minute: '2-digit' })
      : new Intl.DateTimeFormat(loc, { hour: '2-digit', minute: '2-digit' });
  return (u, splits) => splits.map((s) => (s == null ? '' : f.format(new Date(s * 1000))));
}

function width(el) {
  return Math.max(300, el.clientWidth || 800);
}

// ---- counters: production and energy ------------------------------------------------------

/** Increments per bucket of counter signals (resets count from zero), with totals. */
async function counterIncrements(signal, from, to, step) {
  // One bucket before `from` gives the reading the first increment starts at.
  const r = await getJSON(`/api/v1/series?${qs({ signal, from: from - step, to, step, agg: 'last' })}`);
  const pts = r.points || [];
  const xs = [];
  const inc = [];
  let total = 0;
  for (let i = 1; i < pts.length; i++) {
    const d = pts[i][1] - pts[i - 1][1];
    const v = d >= 0 ? d : pts[i][1];
    xs.push(pts[i][0] / 1000);
    inc.push(v);
    total += v;
  }
  return { xs, inc, total };
}

function barChart(el, xs, series, from, to, unit) {
  const span = to - from;
  const opts = {
    width: width(el),
    height: 160,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, min: from / 1000, max: to / 1000 } },
    axes: [{ values: axisFormatter(span), space: 70 }, { values: (u, s) => s.map((v) => num(v, 1)), size: 60 }],
    series: [
      { label: t('common.time'), value: (u, v) => (v == null ? '' : dateTime(v * 1000)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.colour,
        fill: `${s.colour}cc`,
        paths: uPlot.paths.bars({ size: [i === 0 ? 0.7 : 0.4, 60], align: 0 }),
        points: { show: false },
        value: (u, v) => (v == null ? '' : `${num(v, 2)} ${unit}`),
      })),
    ],
  };
  return new uPlot(opts, [xs, ...series.map((s) => s.data)], el);
}

// ---- state timeline ----------------------------------------------------------------------------

async function stateRuns(def, from, to) {
  const span = to - from;
  const url = span <= 86400e3 + 1000
    ? `/api/v1/series?${qs({ signal: def.path, from, to, limit: 100000 })}`
    : `/api/v1/series?${qs({ signal: def.path, from, to, step: niceStep(span, 2000), agg: 'last' })}`;
  const r = await getJSON(url);
  const pts = r.points || [];
  const runs = [];
  for (const [ts, v] of pts) {
    const state = def.states?.[Math.round(v)] ?? String(v);
    const last = runs[runs.length - 1];
    if (last && last.state === state) last.end = ts;
    else {
      if (last) last.end = ts;
      runs.push({ state, start: ts, end: ts });
    }
  }
  if (runs.length) runs[runs.length - 1].end = Math.min(to, Date.now());
  return runs;
}

function drawTimeline(canvas, runs, from, to) {
  const w = width(canvas.parentElement) - 34; // the panel's padding and border
  const dpr = window.devicePixelRatio || 1;
  canvas.width = w * dpr;
  canvas.height = 28 * dpr;
  canvas.style.width = `${w}px`;
  canvas.style.height = '28px';
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.fillStyle = '#e6e8eb';
  ctx.fillRect(0, 0, w, 28);
  const x = (ts) => ((ts - from) / (to - from)) * w;
  for (const r of runs) {
    ctx.fillStyle = stateColour(r.state);
    const a = Math.max(0, x(r.start));
    ctx.fillRect(a, 0, Math.max(1, x(r.end) - a), 28);
  }
}

// ---- the page ----------------------------------------------------------------------------------

export async function render(root, { path }) {
  const plant = await assetTree();
  const node = findNode(plant, path);
  if (!node || level(node) !== 'machine') {
    root.append(h('p.error', {}, t('machine.unknown', { path })));
    return null;
  }
  const sigs = node.signals || [];
  const byName = Object.fromEntries(sigs.map((s) => [signalName(s.path), s]));
  const stateDef = sigs.find((s) => s.kind === 'state');
  const chartable = sigs.filter((s) => s.kind !== 'state' && s.kind !== 'boolean');
  const cleanups = [];

  // Header and signals table.
  const badge = h('span.state', { 'data-testid': 'machine-state' });
  const cells = new Map();
  const rows = sigs.map((s) => {
    const cell = h('td.num', { dataset: { signal: s.path } });
    cells.set(s.path, cell);
    const spec = s.spec
      ? [s.spec.lsl, s.spec.target, s.spec.usl].map((v) => (v == null ? '–' : num(v, 3))).join(' / ')
      : '';
    return h('tr', { class: chartable.includes(s) ? 'pick' : '', onclick: () => chartable.includes(s) && select(s.path) },
      h('td', {}, signalLabel(signalName(s.path)), h('div.muted.small', {}, signalName(s.path))),
      cell, h('td', {}, s.unit || ''), h('td.muted', {}, spec));
  });
  const paint = (v) => {
    if (stateDef && v.signal === stateDef.path) {
      badge.textContent = stateLabel(v.state);
      badge.style.background = stateColour(v.state);
    }
    const c = cells.get(v.signal);
    if (c) c.textContent = valueText(v);
  };

  // Chart controls.
  const view = { signal: (byName.spindle_speed || byName.process_temp || chartable[0])?.path, range: '8h', from: 0, to: 0, live: true, stack: [] };
  const sel = h('select', { 'data-testid': 'signal-select' },
    chartable.map((s) => h('option', { value: s.path }, `${signalLabel(signalName(s.path))}${s.unit ? ` (${s.unit})` : ''}`)));
  sel.value = view.signal;
  const rangeButtons = Object.keys(RANGES).map((k) => h('button', { type: 'button', dataset: { range: k }, onclick: () => setRange(k) }, t(`range.${k}`)));
  const back = h('button', { type: 'button', 'data-testid': 'back', onclick: () => goBack() }, t('machine.back'));
  const panL = h('button', { type: 'button', onclick: () => pan(-0.5) }, t('machine.pan_left'));
  const panR = h('button', { type: 'button', onclick: () => pan(0.5) }, t('machine.pan_right'));
  const info = h('span.muted', { 'data-testid': 'chart-info' });
  const chartEl = h('div.chart', { 'data-testid': 'chart' });
  const timelineCanvas = h('canvas', { 'data-testid': 'timeline' });
  const timelineLegend = h('div.legend');
  const prodEl = h('div.chart');
  const prodText = h('div.figures', { 'data-testid': 'production' });
  const energyEl = h('div.chart');
  const energyText = h('div.figures', { 'data-testid': 'energy' });

  root.append(
    h('div.title', {}, h('h1', {}, t('machine.title', { name: node.name })), h('span.muted', {}, `${node.kind || ''} · ${node.path}`), badge),
    h('div.panel', {},
      h('div.controls', {},
        h('label', {}, t('machine.signal'), ' ', sel),
        h('span.group', {}, rangeButtons),
        panL, panR, back, info),
      chartEl,
      tr('p.muted.small', 'machine.zoom_hint')),
    h('div.grid2', {},
      h('div.panel', {}, tr('h2', 'machine.state_timeline'), timelineCanvas, timelineLegend),
      h('div.panel', {}, tr('h2', 'machine.signals'),
        h('table.signals', {}, h('thead', {}, h('tr', {}, tr('th', 'common.signal'), tr('th', 'common.value'), tr('th', 'common.unit'), h('th', {}, `${t('machine.lsl')} / ${t('machine.target')} / ${t('machine.usl')}`))),
          h('tbody', {}, rows)))),
    h('div.grid2', {},
      h('div.panel', {}, tr('h2', 'machine.production'), prodText, prodEl),
      h('div.panel', {}, tr('h2', 'machine.energy'), energyText, energyEl)));

  for (const v of await latestUnder(node.path)) paint(v);

  let plot = null;
  let data = null;
  let mode = 'raw';
  let side = [];
  let seq = 0;

  const isLive = () => view.live;

  function specSeries(def, xs) {
    const out = [];
    const lim = def.spec || {};
    for (const [k, colour] of [['usl', '#d64045'], ['target', '#2e9d4f'], ['lsl', '#d64045']]) {
      if (lim[k] == null) continue;
      out.push({ series: { label: t(`machine.${k}`), stroke: colour, dash: [6, 4], width: 1, points: { show: false }, value: (u, v) => num(v, 3) }, data: xs.map(() => lim[k]) });
    }
    return out;
  }

  async function loadChart() {
    const my = ++seq;
    const t0 = performance.now();
    const def = sigs.find((s) => s.path === view.signal);
    if (!def) return;
    const span = view.to - view.from;
    let series;
    let stepMs = null;
    const x = { label: t('common.time'), value: (u, v) => (v == null ? '' : dateTime(v * 1000)) };
    const valFmt = (u, v) => (v == null ? '' : num(v, 3));
    const label = `${signalLabel(signalName(def.path))}${def.unit ? ` (${def.unit})` : ''}`;
    if (span <= RAW_MAX_SPAN) {
      mode = 'raw';
      const r = await getJSON(`/api/v1/series?${qs({ signal: def.path, from: Math.round(view.from), to: Math.round(view.to), limit: 100000 })}`);
      if (my !== seq) return;
      const xs = r.points.map((p) => p[0] / 1000);
      data = [xs, r.points.map((p) => p[1])];
      series = [x, { label, stroke: '#1f5fbf', width: 1.5, points: { show: false }, value: valFmt }];
    } else {
      mode = 'agg';
      const r = await getJSON(`/api/v1/series?${qs({ signal: def.path, from: Math.round(view.from), to: Math.round(view.to), step: 'auto', agg: 'all' })}`);
      if (my !== seq) return;
      stepMs = r.step_ms;
      const b = r.buckets || [];
      data = [b.map((p) => p.ts / 1000), b.map((p) => p.mean), b.map((p) => p.min), b.map((p) => p.max)];
      series = [x,
        { label: `${label} ${t('machine.mean')}`, stroke: '#1f5fbf', width: 1.5, points: { show: false }, value: valFmt },
        { label: t('machine.min'), stroke: '#9db8e0', width: 1, points: { show: false }, value: valFmt },
        { label: t('machine.max'), stroke: '#9db8e0', width: 1, points: { show: false }, value: valFmt }];
    }
    side = specSeries(def, data[0]);
    for (const s of side) { series.push(s.series); data.push(s.data); }
    const opts = {
      width: width(chartEl),
      height: 320,
      scales: { x: { time: true, min: view.from / 1000, max: view.to / 1000 } },
      axes: [{ values: axisFormatter(span) }, { values: (u, s) => s.map((v) => num(v, 2)), size: 70 }],
      series,
      bands: mode === 'agg' ? [{ series: [3, 2], fill: 'rgba(31,95,191,0.15)' }] : [],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = Math.round(u.posToVal(u.select.left, 'x') * 1000);
          const b = Math.round(u.posToVal(u.select.left + u.select.width, 'x') * 1000);
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          view.stack.push({ from: view.from, to: view.to, live: view.live });
          view.from = a;
          view.to = b;
          view.live = false;
          loadAll();
        }],
      },
    };
    if (plot) plot.destroy();
    chartEl.replaceChildren();
    plot = new uPlot(opts, data, chartEl);
    const ms = Math.round(performance.now() - t0);
    const points = data[0].length;
    info.textContent = `${mode === 'raw' ? t('machine.raw') : t('machine.aggregated', { step: duration(stepMs) })} · ${t('machine.render_time', { n: num(points, 0), ms: num(ms, 0) })}`;
    chartEl.dataset.points = points;
    chartEl.dataset.mode = mode;
    window.gemba.charts.push({ signal: def.path, span_ms: Math.round(span), mode, step_ms: stepMs, points, ms });
  }

  async function loadTimeline() {
    if (!stateDef) return;
    const { from, to } = view;
    const runs = await stateRuns(stateDef, from, to);
    drawTimeline(timelineCanvas, runs, from, to);
    const totals = new Map();
    for (const r of runs) totals.set(r.state, (totals.get(r.state) || 0) + (r.end - r.start));
    const all = [...totals.values()].reduce((a, b) => a + b, 0) || 1;
    timelineLegend.replaceChildren(...(stateDef.states || []).map((s) => h('span.item', {},
      h('i', { style: `background:${stateColour(s)}` }), `${stateLabel(s)} ${num((100 * (totals.get(s) || 0)) / all, 1)} %`)));
  }

  const sidePlots = [];
  async function loadCounters() {
    const { from, to } = view;
    const span = to - from;
    const step = niceStep(span, 48);
    for (const p of sidePlots.splice(0)) p.destroy();
    if (byName.good_count) {
      const good = await counterIncrements(byName.good_count.path, from, to, step);
      const scrap = byName.scrap_count ? await counterIncrements(byName.scrap_count.path, from, to, step) : { inc: good.inc.map(() => 0), total: 0 };
      const total = good.total + scrap.total;
      prodText.replaceChildren(
        h('span', {}, `${t('machine.good')} `, h('b', {}, num(good.total, 0))),
        h('span', {}, `${t('machine.scrap')} `, h('b', {}, num(scrap.total, 0))),
        h('span', {}, `${t('machine.scrap_rate')} `, h('b', {}, total ? `${num((100 * scrap.total) / total, 2)} %` : '–')));
      prodEl.replaceChildren();
      sidePlots.push(barChart(prodEl, good.xs, [
        { label: t('machine.good'), colour: '#2e9d4f', data: good.inc },
        { label: t('machine.scrap'), colour: '#d64045', data: scrap.inc.slice(0, good.xs.length) }], from, to, 'pcs'));
    } else prodText.textContent = t('machine.no_data');
    if (byName.energy) {
      const unit = byName.energy.unit || '';
      const e = await counterIncrements(byName.energy.path, from, to, step);
      energyText.replaceChildren(h('span', {}, `${t('machine.energy_used')} `, h('b', {}, `${num(e.total, 2)} ${unit}`)));
      energyEl.replaceChildren();
      sidePlots.push(barChart(energyEl, e.xs, [{ label: `${signalLabel('energy')} (${unit})`, colour: '#8e5cc2', data: e.inc }], from, to, unit));
    } else energyText.textContent = t('machine.no_data');
  }

  async function loadAll() {
    for (const b of rangeButtons) b.classList.toggle('active', view.stack.length === 0 && b.dataset.range === view.range);
    back.disabled = view.stack.length === 0;
    try {
      await loadChart();
    } catch (err) {
      chartEl.replaceChildren(errorBox(err));
    }
    Promise.all([loadTimeline(), loadCounters()]).catch((err) => console.error(err));
  }

  function setRange(k) {
    view.range = k;
    view.stack = [];
    view.live = true;
    view.to = Date.now();
    view.from = view.to - RANGES[k];
    loadAll();
  }
  function select(p) {
    view.signal = p;
    sel.value = p;
    loadChart().catch((err) => chartEl.replaceChildren(errorBox(err)));
  }
  function goBack() {
    const prev = view.stack.pop();
    if (!prev) return;
    view.from = prev.from;
    view.to = prev.to;
    view.live = prev.live;
    if (view.live) {
      // Back to a live view: it ends now.
      const span = view.to - view.from;
      view.to = Date.now();
      view.from = view.to - span;
    }
    loadAll();
  }
  function pan(f) {
    const span = view.to - view.from;
    view.stack.push({ from: view.from, to: view.to, live: view.live });
    view.to = Math.round(Math.min(view.to + f * span, Date.now()));
    view.from = view.to - span;
    view.live = false;
    loadAll();
  }
  sel.addEventListener('change', () => select(sel.value));

  setRange(view.range);

  // Live: values always; the chart follows in raw mode, aggregate views refresh every minute.
  cleanups.push(onLive((msg) => {
    for (const v of msg.latest) {
      if (!v.signal.startsWith(`${node.path}/`)) continue;
      paint(v);
      if (plot && mode === 'raw' && v.signal === view.signal && isLive() && data) {
        const x = v.ts / 1000;
        if (data[0].length && x <= data[0][data[0].length - 1]) continue;
        const span = view.to - view.from;
        view.to = Math.max(view.to, v.ts + 1);
        view.from = view.to - span;
        data[0].push(x);
        data[1].push(v.value);
        for (let i = 0; i < side.length; i++) data[2 + i].push(side[i].data[0]);
        while (data[0].length && data[0][0] < view.from / 1000) for (const col of data) col.shift();
        plot.setData(data, false);
        plot.setScale('x', { min: view.from / 1000, max: view.to / 1000 });
      }
    }
  }));
  const timer = setInterval(() => {
    if (isLive() && mode === 'agg') setRange(view.range);
  }, 60000);
  cleanups.push(() => clearInterval(timer));
  const onResize = () => {
    if (plot) plot.setSize({ width: width(chartEl), height: 320 });
  };
  window.addEventListener('resize', onResize);
  cleanups.push(() => window.removeEventListener('resize', onResize));
  cleanups.push(() => {
    seq += 1;
    if (plot) plot.destroy();
    for (const p of sidePlots) p.destroy();
  });
  return () => cleanups.forEach((f) => f());
}
