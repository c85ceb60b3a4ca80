// Quality page: SPC chart of a measured characteristic (GET /api/v1/spc) with its centre line,
// frozen control limits, the run-rule violations marked, the violations listed with their rule,
// and capability against the spec limits; above it, the latest visual inspections
// (GET /api/v1/inspections) with their heat maps, refreshed every 10 s.
import { assetTree, getJSON, qs } from '../api.js';
import { t, num, dateTime } from '../i18n.js';
import { h, tr } from '../ui.js';

/** Every signal with both spec limits (the measured quality characteristics). */
function qualitySignals(tree) {
  const out = [];
  const walk = (n) => {
    for (const s of n.signals || []) if (s.spec && s.spec.lsl != null && s.spec.usl != null) out.push(s);
    for (const c of n.children || []) walk(c);
  };
  walk(tree);
  return out;
}

const CHARTS = ['imr', 'xbar_r', 'ewma', 'cusum'];
const RULES = ['we', 'all'];

/** The latest inspection results, each with its heat map over the image, score and links. */
function inspections() {
  const el = h('div.panel', { 'data-testid': 'inspections' });
  const card = (x) => h('figure.inspection', { 'data-testid': 'inspection', 'data-verdict': x.verdict },
    h('img', { src: x.heat_map_url, alt: t('quality.heat_map'), title: t('quality.heat_map'), width: 96, height: 96 }),
    h('figcaption', {},
      h(`strong.verdict-${x.verdict}`, {}, t(`quality.verdict_${x.verdict}`)), ' ',
      h('span', { title: t('quality.score_threshold') }, `${num(x.score, 1)} / ${num(x.threshold, 1)}`), h('br'),
      [x.part, x.lot].filter(Boolean).join(' · ') || '–', h('br'),
      h('span.muted', {}, `${dateTime(x.ts)} · ${x.model}`)));
  async function load() {
    let r;
    try {
      r = await getJSON(`/api/v1/inspections?${qs({ limit: 12 })}`);
    } catch (err) {
      el.replaceChildren(tr('h2', 'quality.inspections'), h('p.error', {}, t('common.error', { msg: err.message })));
      return;
    }
    el.dataset.count = String(r.inspections.length);
    el.replaceChildren(tr('h2', 'quality.inspections'), r.inspections.length
      ? h('div.inspections', {}, r.inspections.map(card))
      : tr('p.muted', 'quality.no_inspections'));
  }
  return { el, load };
}

export async function render(root) {
  root.append(tr('h1', 'quality.title'));
  const insp = inspections();
  root.append(insp.el);
  await insp.load();
  const inspTimer = setInterval(insp.load, 10_000);
  const sigs = qualitySignals(await assetTree());
  if (!sigs.length) {
    root.append(tr('p.muted', 'quality.no_signals'));
    return () => clearInterval(inspTimer);
  }
  const state = { signal: sigs[0].path, chart: 'imr', rules: 'we', hours: 8 };
  const select = (key, options, label) => {
    const el = h('select', { 'data-testid': `quality-${key}`, onchange: (e) => { state[key] = e.target.value; load(); } },
      options.map(([v, text]) => h('option', { value: v, selected: String(state[key]) === String(v) }, text)));
    return h('label.control', {}, tr('span', label), ' ', el);
  };
  const controls = h('div.toolbar', {},
    select('signal', sigs.map((s) => [s.path, s.path]), 'common.signal'),
    select('chart', CHARTS.map((c) => [c, t(`quality.chart_${c}`)]), 'quality.chart'),
    select('rules', RULES.map((r) => [r, t(`quality.rules_${r}`)]), 'quality.rules'),
    select('hours', [8, 24].map((n) => [n, t(`range.${n}h`)]), 'common.range'));
  const info = h('p.muted', { 'data-testid': 'quality-info' });
  const chartEl = h('div.chart', { 'data-testid': 'spc-chart' });
  const capEl = h('div.panel', { 'data-testid': 'quality-capability' });
  const violEl = h('div.panel', { 'data-testid': 'quality-violations' });
  root.append(h('div.panel', {}, controls, chartEl, info), h('div.grid2', {}, capEl, violEl));
  let plot = null;

  async function load() {
    const to = Date.now();
    const from = to - state.hours * 3600e3;
    let r;
    try {
      r = await getJSON(`/api/v1/spc?${qs({ signal: state.signal, chart: state.chart, rules: state.rules, from, to })}`);
    } catch (err) {
      chartEl.replaceChildren(h('p.error', {}, t('common.error', { msg: err.message })));
      return;
    }
    const pts = r.main.points;
    const xs = pts.map((p) => p[0] / 1000);
    const ys = pts.map((p) => p[1]);
    const at = (arr, i) => (arr.length === 1 ? arr[0] : arr[i]);
    const bad = new Set(r.violations.map((v) => v.ts));
    const marks = pts.map((p) => (bad.has(p[0]) ? p[1] : null));
    const unit = r.unit || '';
    const fmt = (u, v) => (v == null ? '' : `${num(v, 4)} ${unit}`);
    const opts = {
      width: Math.max(320, chartEl.clientWidth || 800),
      height: 320,
      scales: { x: { time: true } },
      series: [
        {},
        { label: t(`quality.chart_${r.chart}`), stroke: '#1f5fbf', width: 1, points: { show: true, size: 3 }, value: fmt },
        { label: t('quality.center'), stroke: '#2e9d4f', width: 1, points: { show: false }, value: fmt },
        { label: t('quality.lcl'), stroke: '#d64045', dash: [6, 4], width: 1, points: { show: false }, value: fmt },
        { label: t('quality.ucl'), stroke: '#d64045', dash: [6, 4], width: 1, points: { show: false }, value: fmt },
        { label: t('quality.violation'), stroke: '#d64045', width: 0, paths: () => null, points: { show: true, size: 7, fill: '#d64045' }, value: fmt },
      ],
    };
    const data = [xs, ys, xs.map(() => r.main.center), xs.map((_, i) => at(r.main.lcl, i)), xs.map((_, i) => at(r.main.ucl, i)), marks];
    if (plot) plot.destroy();
    chartEl.replaceChildren();
    plot = new uPlot(opts, data, chartEl);
    chartEl.dataset.points = String(pts.length);
    chartEl.dataset.violations = String(r.violations.length);
    info.textContent = t('quality.info', {
      n: num(r.baseline_samples, 0),
      from: dateTime(r.baseline[0]),
      to: dateTime(r.baseline[1]),
      sigma: num(r.sigma_within, 5),
    });
    const c = r.capability;
    capEl.replaceChildren(tr('h2', 'quality.capability'), c
      ? h('table.cap', {}, [['Cp', c.cp], ['Cpk', c.cpk], ['Pp', c.pp], ['Ppk', c.ppk], [t('quality.mean'), c.mean], ['n', c.n]]
        .map(([k, v]) => h('tr', {}, h('th', {}, k), h('td.num', {}, num(v, 3)))))
      : tr('p.muted', 'common.none'));
    const recent = r.violations.slice(-20).reverse();
    violEl.replaceChildren(tr('h2', 'quality.violations'), recent.length
      ? h('table', {}, h('tbody', {}, recent.map((v) => h('tr', {},
        h('td', {}, dateTime(v.ts)),
        h('td', {}, v.number ? t('quality.rule_n', { n: v.number }) : t('quality.limit')),
        h('td', {}, t(`quality.rule_${v.number}`)),
        h('td.num', {}, `${num(v.value, 4)} ${unit}`)))))
      : tr('p.muted', 'quality.no_violations'));
  }
  await load();
  const timer = setInterval(load, 60_000);
  return () => { clearInterval(timer); clearInterval(inspTimer); if (plot) plot.destroy(); };
}
