// Browser test of the dashboard's logistics and energy pages in Debian's Chromium (playwright-core).
// Usage: node web-tests/logistics.mjs http://127.0.0.1:PORT OUTDIR
// Needs `gemba demo` with some history (finished lots). Prints the figures as JSON on the last
// line, saves screenshots in OUTDIR, exits non-zero naming what failed.
import { join } from 'node:path';
import { launch } from './browser.mjs';

const figures = {};
const errors = [];
const step = (msg) => console.error(`logistics test: ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const { base, outDir, browser } = await launch(
  'node web-tests/logistics.mjs http://127.0.0.1:PORT OUTDIR',
);
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1100 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console error: ${m.text()}`); });

  step('logistics page');
  let t0 = Date.now();
  await page.goto(`${base}/#/logistics`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=inventory-table]', { timeout: 15000 });
  await page.waitForSelector('[data-testid=genealogy-table]', { timeout: 15000 });
  figures.logistics_ms = Date.now() - t0;
  figures.inventory_rows = await page.evaluate(() => window.gemba.inventoryRows);
  figures.lots = await page.evaluate(() => window.gemba.lots);
  figures.genealogy = await page.evaluate(() => window.gemba.genealogy);
  check(figures.inventory_rows > 0, 'no inventory rows');
  check(figures.genealogy.lots >= 2, `the genealogy of a finished lot has ${figures.genealogy.lots} lots`);
  check(figures.genealogy.windows >= 1, 'no process data in the genealogy');
  await page.screenshot({ path: join(outDir, 'logistics.png'), fullPage: true });
  // WIP only, then forward genealogy of the raw lot.
  await page.selectOption('[data-testid=inventory-kind]', 'wip');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=inventory-table] tbody tr').length > 0);
  const raw = figures.genealogy && await page.$eval('[data-testid=genealogy-table] tbody tr:nth-child(2) td', (td) => td.textContent.trim());
  await page.fill('[data-testid=genealogy-lot]', raw);
  await page.selectOption('[data-testid=genealogy-direction]', 'forward');
  await page.click('[data-testid=genealogy-go]');
  await page.waitForFunction((lot) => window.gemba.genealogy?.lot === lot && window.gemba.genealogy.direction === 'forward', raw);
  figures.forward = await page.evaluate(() => window.gemba.genealogy);
  check(figures.forward.lots === 2, `forward genealogy of ${raw}: ${figures.forward.lots} lots`);

  step('energy page');
  t0 = Date.now();
  await page.goto(`${base}/#/energy`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=energy-table]', { timeout: 15000 });
  await page.waitForSelector('[data-testid=lot-energy-table]', { timeout: 30000 });
  figures.energy_ms = Date.now() - t0;
  figures.kwh_per_good = await page.evaluate(() => window.gemba.kwhPerGood);
  figures.co2e_per_lot = await page.evaluate(() => window.gemba.co2ePerLot);
  check(figures.kwh_per_good.length > 0 && figures.kwh_per_good.every((x) => x > 0), 'no kWh per good part');
  check(figures.co2e_per_lot.length > 0 && figures.co2e_per_lot.every((x) => x > 0), 'no CO2e per lot');
  await page.screenshot({ path: join(outDir, 'energy.png'), fullPage: true });

  step('简体中文');
  await page.selectOption('[data-testid=lang]', 'zh-CN');
  // The page is drawn again once the dictionary has loaded: wait for that, not for the old table.
  await page.waitForFunction(() => document.querySelector('h1')?.textContent === '能源', null, { timeout: 15000 })
    .catch(() => {});
  await page.waitForSelector('[data-testid=energy-table]');
  const title = await page.textContent('h1');
  check(title === '能源', `the energy page title in zh-CN is ${title}`);
  await page.screenshot({ path: join(outDir, 'energy-zh-CN.png'), fullPage: true });
  check(errors.length === 0, `errors in the page: ${errors.join('; ')}`);
  figures.ok = true;
} catch (err) {
  figures.ok = false;
  figures.error = err.message;
  figures.page_errors = errors;
  console.log(JSON.stringify(figures));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(figures));
