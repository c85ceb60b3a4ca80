// Browser test of Gemba's dashboard in Debian's Chromium (driven by playwright-core; no browser
// download). Usage: node web-tests/dashboard.mjs http://127.0.0.1:PORT OUTDIR
// Needs a server with live data (`gemba demo`). Prints the measured figures as JSON on the last
// line and writes them, with screenshots, into OUTDIR. Exits non-zero naming what failed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './browser.mjs';


const LIMITS = { page_load_ms: 1000, chart_render_ms: 2000, heap_growth_bytes: 8 * 1024 * 1024 };
const figures = {};
const errors = [];
const step = (msg) => console.error(`dashboard test: ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const { base, outDir, browser } = await launch(
  'node web-tests/dashboard.mjs http://127.0.0.1:PORT OUTDIR',
);
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console error: ${m.text()}`); });
  page.on('requestfailed', (r) => {
    // Navigating away aborts requests in flight (and the event stream): not an error.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
  };

  // 1. First load: navigation until the overview shows the plant with values.
  step('loading /');
  const t0 = Date.now();
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.gemba?.ready === true, null, { timeout: 10000 });
  await page.waitForSelector('[data-testid=machine-card] .value:not(:empty)', { timeout: 10000 });
  const wall = Date.now() - t0;
  const nav = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    return { load: Math.round(n.loadEventEnd), dcl: Math.round(n.domContentLoadedEventEnd), first: window.gemba.firstRenderMs };
  });
  figures.page_load_ms = Math.max(nav.load, nav.first);
  figures.page_load_event_ms = nav.load;
  figures.first_render_ms = nav.first;
  figures.page_load_wall_ms = wall;
  const cards = await page.locator('[data-testid=machine-card]').count();
  figures.machine_cards = cards;
  check(cards > 0, 'the overview shows no machine cards');
  check(figures.page_load_ms < LIMITS.page_load_ms, `first page load took ${figures.page_load_ms} ms (limit ${LIMITS.page_load_ms} ms)`);

  // 2. A live value changes.
  step('waiting for a live value to change');
  const before = await page.$$eval('[data-testid=machine-card] .value', (els) => els.map((e) => e.textContent));
  const t1 = Date.now();
  await page.waitForFunction((prev) => {
    const now = [...document.querySelectorAll('[data-testid=machine-card] .value')].map((e) => e.textContent);
    return now.some((v, i) => v !== prev[i]);
  }, before, { timeout: 15000, polling: 100 });
  figures.live_change_ms = Date.now() - t1;
  check(await page.locator('#live[data-status=on]').count() === 1, 'the live indicator is not on');
  await page.waitForTimeout(1500);
  await page.waitForFunction(() => /%/.test(document.querySelector('[data-testid=plant-oee]')?.textContent || ''), null, { timeout: 20000 });
  figures.plant_oee = await page.textContent('[data-testid=plant-oee]');
  await page.screenshot({ path: join(outDir, 'overview.png') });

  // 3. Machine page: the 8 h chart from aggregates.
  // The demo's cnc1 (bearing wear) when there is one, else the first machine.
  const cnc1 = page.locator('[data-testid=machine-card][data-path$="/cnc1"]');
  const card = (await cnc1.count()) ? cnc1.first() : page.locator('[data-testid=machine-card]').first();
  const href = await card.getAttribute('href');
  step(`opening ${href}`);
  const t2 = Date.now();
  await card.click();
  await page.waitForSelector('[data-testid=chart][data-mode=agg] canvas', { timeout: 15000 });
  figures.chart_wall_ms = Date.now() - t2;
  const chart = await page.evaluate(() => window.gemba.charts.at(-1));
  figures.chart_render_ms = chart.ms;
  figures.chart_points = chart.points;
  figures.chart_step_ms = chart.step_ms;
  figures.chart_span_ms = chart.span_ms;
  figures.chart_signal = chart.signal;
  check(chart.mode === 'agg' && chart.span_ms === 8 * 3600e3, `expected an 8 h aggregate chart, got ${JSON.stringify(chart)}`);
  check(chart.points > 10, `the 8 h chart has only ${chart.points} points`);
  check(chart.ms < LIMITS.chart_render_ms, `the 8 h chart took ${chart.ms} ms (limit ${LIMITS.chart_render_ms} ms)`);
  await page.waitForSelector('[data-testid=production] b', { timeout: 10000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(outDir, 'machine.png'), fullPage: true });

  // Zoom by drag-select, then Back.
  step('zooming by drag');
  const box = await page.locator('[data-testid=chart] .u-over').boundingBox();
  const n0 = await page.evaluate(() => window.gemba.charts.length);
  await page.mouse.move(box.x + box.width * 0.80, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.95, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction((n) => window.gemba.charts.length > n, n0, { timeout: 10000 });
  const zoom = await page.evaluate(() => window.gemba.charts.at(-1));
  figures.zoom_render_ms = zoom.ms;
  figures.zoom_span_ms = zoom.span_ms;
  check(zoom.span_ms < chart.span_ms / 4, `zoom did not narrow the range: ${JSON.stringify(zoom)}`);
  await page.click('[data-testid=back]');
  await page.waitForFunction((n) => window.gemba.charts.at(-1).span_ms === n, chart.span_ms, { timeout: 10000 });

  // 4. Events and models pages.
  step('events page');
  await page.goto(`${base}/#/events`);
  await page.waitForSelector('[data-testid=events-table] tbody tr td.time', { timeout: 10000 });
  await page.selectOption('[data-testid=events-type]', 'state');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid=events-table] tbody tr')];
    return rows.length > 0 && rows.every((r) => r.dataset.type === 'state');
  }, null, { timeout: 10000 });
  figures.state_events_shown = await page.locator('[data-testid=events-table] tbody tr').count();
  await page.screenshot({ path: join(outDir, 'events.png') });
  step('models page');
  await page.goto(`${base}/#/models`);
  await page.waitForSelector('[data-testid=models-table], [data-testid=models-empty]', { timeout: 10000 });
  step('quality page (SPC)');
  const t3 = Date.now();
  await page.goto(`${base}/#/quality`);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=spc-chart]')?.dataset.points) > 0, null, { timeout: 15000 });
  figures.spc_chart_wall_ms = Date.now() - t3;
  figures.spc_points = Number(await page.getAttribute('[data-testid=spc-chart]', 'data-points'));
  const cap = await page.textContent('[data-testid=quality-capability]');
  check(cap.includes('Cpk'), `no capability indices on the quality page: ${cap}`);
  await page.selectOption('[data-testid=quality-chart]', 'ewma');
  await page.waitForFunction(() => document.querySelector('[data-testid=spc-chart] canvas') !== null, null, { timeout: 10000 });
  await page.screenshot({ path: join(outDir, 'quality.png'), fullPage: true });

  // Alarms: a rule that fires on the next live sample, its alarm in the list with its explanation,
  // acknowledged in the page with a comment; the server records who did it.
  step('alarms page: raise, explain, acknowledge');
  const ruleName = `browser-test-${Date.now()}`;
  const ruleSignal = `${href.slice('#/machine/'.length)}/air_temp`;
  const created = await page.evaluate(async ([name, signal]) => {
    const r = await fetch('/api/v1/alarm-rules', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, type: 'threshold', signal, above: 1, clear: 0, severity: 'high' }),
    });
    return { status: r.status, body: await r.text() };
  }, [ruleName, ruleSignal]);
  check(created.status === 201, `creating an alarm rule failed: ${JSON.stringify(created)}`);
  const t4 = Date.now();
  await page.goto(`${base}/#/alarms`);
  await page.fill('[data-testid=alarm-user]', 'browser-test');
  await page.dispatchEvent('[data-testid=alarm-user]', 'change');
  const row = `[data-testid=alarm-row][data-rule="${ruleName}"]`;
  await page.waitForSelector(row, { timeout: 20000 });
  figures.alarm_visible_ms = Date.now() - t4;
  await page.click(row);
  await page.waitForSelector('[data-testid=explanation] [data-testid=contribution]', { timeout: 10000 });
  const why = await page.textContent('[data-testid=explanation-rule]');
  check(why.includes('above 1'), `the explanation does not name the rule: ${why}`);
  const bar = await page.getAttribute('[data-testid=contribution]', 'data-signal');
  check(bar === ruleSignal, `the contribution bar names ${bar}, not ${ruleSignal}`);
  await page.fill('[data-testid=comment-text]', 'seen in the browser test');
  await page.click('[data-testid=ack]');
  await page.waitForSelector(`${row}[data-state=acknowledged]`, { timeout: 10000 });
  await page.waitForSelector('[data-testid=comments]', { timeout: 10000 });
  await page.screenshot({ path: join(outDir, 'alarms.png'), fullPage: true });
  const acked = await page.evaluate(async (name) => {
    const { alarms } = await (await fetch(`/api/v1/alarms?rule=${name}`)).json();
    return alarms[0];
  }, ruleName);
  check(acked.acknowledged?.by === 'browser-test' && acked.comments[0]?.text === 'seen in the browser test',
    `the acknowledgement is not stored: ${JSON.stringify(acked)}`);
  await page.evaluate(async (name) => fetch(`/api/v1/alarm-rules/${name}`, { method: 'DELETE' }), ruleName);

  // 5. 简体中文: labels translated, choice remembered.
  step('switching to 简体中文');
  await page.goto(`${base}/#/`);
  await page.waitForFunction(() => window.gemba?.ready === true);
  await page.selectOption('[data-testid=lang]', 'zh-CN');
  await page.waitForFunction(() => document.querySelector('nav a[data-page=overview]').textContent === '工厂总览', null, { timeout: 5000 });
  await page.reload();
  await page.waitForFunction(() => window.gemba?.ready === true);
  const zh = await page.evaluate(() => ({
    nav: document.querySelector('nav a[data-page=events]').textContent,
    title: document.querySelector('h1').textContent,
    lang: document.documentElement.lang,
  }));
  figures.zh_labels = zh;
  check(zh.nav === '事件' && zh.title === '工厂总览' && zh.lang === 'zh-CN', `Chinese labels missing after reload: ${JSON.stringify(zh)}`);
  await page.waitForSelector('[data-testid=machine-card] .value:not(:empty)');
  await page.waitForTimeout(1500);
  await page.screenshot({ path: join(outDir, 'overview-zh-CN.png') });

  // 6. Memory over ~30 s (GEMBA_DASHBOARD_MEMORY_S) of live updates on a live 1 h chart and its
  // machine's values.
  const memoryS = Number(process.env.GEMBA_DASHBOARD_MEMORY_S || 30);
  step(`watching memory for ${memoryS} s of live updates`);
  await page.goto(`${base}/#${href.slice(1)}`);
  await page.waitForSelector('[data-testid=chart] canvas');
  await page.click('button[data-range="1h"]');
  await page.waitForSelector('[data-testid=chart][data-mode=raw] canvas', { timeout: 10000 });
  await page.waitForTimeout(2000);
  const samples = [];
  const h0 = await heap();
  samples.push(h0);
  const pts0 = await page.evaluate(() => document.querySelector('[data-testid=chart] .u-over') && window.gemba.charts.at(-1).points);
  for (let i = 0; i < Math.max(1, Math.round(memoryS / 5)); i++) {
    await page.waitForTimeout(5000);
    samples.push(await heap());
  }
  figures.heap_start_bytes = Math.round(h0);
  figures.heap_end_bytes = Math.round(samples.at(-1));
  figures.heap_growth_bytes = Math.round(samples.at(-1) - h0);
  figures.heap_samples_bytes = samples.map(Math.round);
  figures.live_chart_points_at_start = pts0;
  await page.screenshot({ path: join(outDir, 'machine-live-zh-CN.png') });
  check(figures.heap_growth_bytes < LIMITS.heap_growth_bytes,
    `JS heap grew by ${figures.heap_growth_bytes} bytes in ${memoryS} s (limit ${LIMITS.heap_growth_bytes})`);

  check(errors.length === 0, `errors in the page:\n${errors.join('\n')}`);
  figures.ok = true;
} catch (err) {
  figures.ok = false;
  figures.error = err.message;
  figures.page_errors = errors;
} finally {
  await browser.close();
}
writeFileSync(join(outDir, 'figures.json'), `${JSON.stringify(figures, null, 1)}\n`);
console.log(JSON.stringify(figures));
if (!figures.ok) {
  console.error(`dashboard test failed: ${figures.error}`);
  process.exit(1);
}
