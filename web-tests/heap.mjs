// Where the dashboard's JS heap goes over a long watch of live updates (docs/PERFORMANCE.md,
// "Browser memory over 10 minutes"). Not part of the test suite: run it by hand against a running
// demo (`gemba demo`, authentication off), e.g.
//
//   GEMBA_HEAP_S=600 node web-tests/heap.mjs http://127.0.0.1:8080 /tmp/heap
//
// It opens the first machine's page with a live 1 h chart (what dashboard.mjs watches), measures
// the heap after a forced GC every 10 s, takes a heap snapshot after the first minute and at the
// end, and prints: the growth in each half of the run (a leak grows at the same rate in both, a
// warm-up or a filling buffer slows down) and the object groups (constructor or type) whose
// retained count and size changed most between the two snapshots. The figures also go to
// OUTDIR/heap.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './browser.mjs';

const seconds = Number(process.env.GEMBA_HEAP_S || 600);
const { base, outDir, browser } = await launch('node heap.mjs URL OUTDIR (GEMBA_HEAP_S=600)');

/// Self size and count per (node type, name) of a heap snapshot, objects reachable from the roots
/// only (the snapshot is taken after a GC).
function summarise(snapshot) {
  const meta = snapshot.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const groups = new Map();
  const nodes = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    // Strings are grouped as one (their names are their contents).
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string'
      ? '(strings)'
      : `${type}:${snapshot.strings[nodes[i + iName]]}`;
    const g = groups.get(name) || { count: 0, bytes: 0 };
    g.count += 1;
    g.bytes += nodes[i + iSize];
    groups.set(name, g);
  }
  return groups;
}

async function snapshot(cdp) {
  const chunks = [];
  const onChunk = (e) => chunks.push(e.chunk);
  cdp.on('HeapProfiler.addHeapSnapshotChunk', onChunk);
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  cdp.off('HeapProfiler.addHeapSnapshotChunk', onChunk);
  return summarise(JSON.parse(chunks.join('')));
}

const figures = { seconds };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await cdp.send('HeapProfiler.enable');
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const get = (n) => metrics.find((m) => m.name === n).value;
    return { used: get('JSHeapUsedSize'), nodes: get('Nodes'), listeners: get('JSEventListeners') };
  };
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=machine-card] .value:not(:empty)', { timeout: 20000 });
  const href = await page.getAttribute('[data-testid=machine-card]', 'href');
  await page.goto(`${base}/#${href.slice(1)}`);
  await page.waitForSelector('[data-testid=chart] canvas');
  await page.click('button[data-range="1h"]');
  await page.waitForSelector('[data-testid=chart][data-mode=raw] canvas', { timeout: 10000 });
  await page.waitForTimeout(60000);
  const first = await snapshot(cdp);
  const samples = [];
  const t0 = Date.now();
  for (let s = 0; s <= seconds; s += 10) {
    const h = await heap();
    const points = await page.evaluate(() => window.gemba.charts.at(-1)?.points ?? null);
    samples.push({ t_s: Math.round((Date.now() - t0) / 1000), ...h, chart_points: points });
    if (s < seconds) await page.waitForTimeout(Math.max(0, t0 + (s + 10) * 1000 - Date.now()));
  }
  const last = await snapshot(cdp);
  const half = Math.floor(samples.length / 2);
  const grow = (a, b) => Math.round(samples[b].used - samples[a].used);
  figures.heap_start_bytes = Math.round(samples[0].used);
  figures.heap_end_bytes = Math.round(samples.at(-1).used);
  figures.growth_first_half_bytes = grow(0, half);
  figures.growth_second_half_bytes = grow(half, samples.length - 1);
  figures.heap_min_bytes = Math.round(Math.min(...samples.map((x) => x.used)));
  figures.heap_max_bytes = Math.round(Math.max(...samples.map((x) => x.used)));
  figures.dom_nodes = [samples[0].nodes, samples.at(-1).nodes];
  figures.listeners = [samples[0].listeners, samples.at(-1).listeners];
  figures.chart_points = [samples[0].chart_points, samples.at(-1).chart_points];
  const changes = [];
  for (const name of new Set([...first.keys(), ...last.keys()])) {
    const a = first.get(name) || { count: 0, bytes: 0 };
    const b = last.get(name) || { count: 0, bytes: 0 };
    if (a.bytes !== b.bytes || a.count !== b.count) changes.push({ name, count: b.count - a.count, bytes: b.bytes - a.bytes });
  }
  changes.sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes));
  figures.snapshot_total_change_bytes = changes.reduce((s, c) => s + c.bytes, 0);
  figures.top_changes = changes.slice(0, 15);
  figures.samples = samples;
  writeFileSync(join(outDir, 'heap.json'), JSON.stringify(figures, null, 1));
  const { samples: _, ...short } = figures;
  console.log(JSON.stringify(short, null, 1));
} finally {
  await browser.close();
}
