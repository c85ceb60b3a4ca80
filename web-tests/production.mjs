// Browser check of the Production and Maintenance pages in Debian's Chromium (playwright-core).
// Usage: node web-tests/production.mjs http://127.0.0.1:PORT OUTDIR
// Needs `gemba demo`. Prints the figures as JSON on the last line; screenshots go to OUTDIR.
import { join } from 'node:path';
import { launch } from './browser.mjs';

const figures = {};
const { base, outDir, browser } = await launch(
  'node web-tests/production.mjs http://127.0.0.1:PORT OUTDIR',
  { args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync'] },
);
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/#/production`);
  const t0 = Date.now();
  await page.waitForSelector('[data-testid=oee-kpis] [data-kpi=oee] .big', { timeout: 20000 });
  figures.production_ms = Date.now() - t0;
  figures.oee_text = (await page.textContent('[data-testid=oee-kpis] [data-kpi=oee] .big')).trim();
  figures.loss_rows = await page.locator('[data-testid=oee-losses] .bar-row').count();
  figures.machine_rows = await page.locator('[data-testid=oee-machines] tbody tr').count();
  figures.time_rows = await page.locator('[data-testid=oee-rows] tbody tr').count();
  figures.causes = await page.locator('[data-testid=oee-causes] li').count();
  figures.oee_fetch_ms = await page.evaluate(() => window.gemba.oeeMs);
  await page.screenshot({ path: join(outDir, 'production.png'), fullPage: true });

  await page.goto(`${base}/#/maintenance`);
  await page.waitForSelector('[data-testid=wo-table] tbody tr', { timeout: 20000 });
  await page.fill('[data-testid=wo-title]', 'Check the coolant pump');
  await page.click('[data-testid=wo-create]');
  await page.waitForSelector('[data-testid=wo-detail] [data-testid=wo-assign]', { timeout: 10000 });
  await page.fill('[data-testid=wo-assignee]', 'bob');
  await page.click('[data-testid=wo-assign]');
  await page.waitForSelector('[data-testid=wo-start]', { timeout: 10000 });
  await page.click('[data-testid=wo-start]');
  await page.waitForSelector('[data-testid=wo-done]', { timeout: 10000 });
  await page.click('[data-testid=wo-done]');
  await page.waitForFunction(() => !document.querySelector('[data-testid=wo-done]') && !document.querySelector('[data-testid=wo-start]'), null, { timeout: 10000 });
  figures.work_order_done = true;
  await page.screenshot({ path: join(outDir, 'maintenance.png'), fullPage: true });

  await page.selectOption('#lang', 'zh-CN');
  await page.waitForFunction(() => document.querySelector('nav a[data-page=production]').textContent === '生产', null, { timeout: 10000 });
  figures.zh = true;
  figures.page_errors = errors;
  figures.ok = errors.length === 0;
} catch (e) {
  figures.ok = false;
  figures.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(figures));
process.exit(figures.ok ? 0 : 1);
