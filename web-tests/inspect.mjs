// Browser test of the quality page's visual inspections in Debian's Chromium (playwright-core).
// Usage: node web-tests/inspect.mjs http://127.0.0.1:PORT OUTDIR
// Needs a server with some inspections, at least one of them failed, of lot L-7 (crates/gemba/tests/
// inspect.rs makes them). Prints the figures as JSON on the last line, saves screenshots in OUTDIR, exits
// non-zero naming what failed.
import { join } from 'node:path';
import { launch } from './browser.mjs';

const figures = {};
const errors = [];
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const { base, outDir, browser } = await launch(
  'node web-tests/inspect.mjs http://127.0.0.1:PORT OUTDIR',
);
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console error: ${m.text()}`); });
  const t0 = Date.now();
  await page.goto(`${base}/#/quality`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=inspection] img', { timeout: 15000 });
  // Every heat map has loaded and decoded.
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=inspection] img')]
    .every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 15000 });
  figures.render_ms = Date.now() - t0;
  figures.cards = await page.locator('[data-testid=inspection]').count();
  figures.fails = await page.locator('[data-testid=inspection][data-verdict=fail]').count();
  figures.heat_map_px = await page.evaluate(() => document.querySelector('[data-testid=inspection] img').naturalWidth);
  check(figures.cards > 0, 'no inspection on the quality page');
  check(figures.fails > 0, 'no failed inspection shown');
  await page.screenshot({ path: join(outDir, 'inspections.png'), fullPage: true });
  await page.selectOption('[data-testid=lang]', 'zh-CN');
  await page.waitForFunction(() => document.querySelector('[data-testid=inspections] h2')?.textContent === '最新视觉检测', null, { timeout: 15000 });
  figures.fail_label_zh = await page.textContent('[data-testid=inspection][data-verdict=fail] strong');
  check(figures.fail_label_zh === '不合格', `the fail verdict in zh-CN is ${figures.fail_label_zh}`);
  // The genealogy of lot L-7 (made by crates/gemba/tests/inspect.rs) lists its inspections.
  // Back to English first, and only then to the logistics page: a language change draws the page
  // again once the dictionary has loaded, which would replace a lot number typed in before.
  await page.selectOption('[data-testid=lang]', 'en');
  await page.waitForFunction(() => {
    const h = document.querySelector('[data-testid=inspections] h2');
    return h && h.textContent !== '最新视觉检测';
  }, null, { timeout: 15000 });
  await page.goto(`${base}/#/logistics`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=genealogy-go]', { timeout: 15000 });
  await page.fill('[data-testid=genealogy-lot]', 'L-7');
  await page.click('[data-testid=genealogy-go]');
  await page.waitForSelector('[data-testid=genealogy-inspections] tbody tr', { timeout: 15000 });
  figures.genealogy_inspections = await page.evaluate(() => [...document.querySelectorAll('[data-testid=genealogy-inspections] tbody tr td')]
    .slice(0, 3).map((td) => td.textContent).join(' '));
  await page.screenshot({ path: join(outDir, 'genealogy-inspections.png'), fullPage: true });
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
