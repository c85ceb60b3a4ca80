// Browser test of signing in to Gemba's dashboard in Debian's Chromium (playwright-core).
// Usage: GEMBA_PASSWORD=<one-time password of admin> node web-tests/login.mjs http://127.0.0.1:PORT OUTDIR
// Needs a server with authentication on whose admin still has the one-time password. Prints the
// measured figures as JSON on the last line. Exits non-zero naming what failed.
import { join } from 'node:path';
import { launch } from './browser.mjs';

const oneTime = process.env.GEMBA_PASSWORD;
const step = (msg) => console.error(`login test: ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}
const figures = {};
const errors = [];
const { base, outDir, browser } = await launch(
  'GEMBA_PASSWORD=… node web-tests/login.mjs http://127.0.0.1:PORT OUTDIR',
  { extraOk: Boolean(oneTime) },
);
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));

  step('the dashboard asks for a sign-in');
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid=login-form]', { timeout: 10000 });
  check(!(await page.evaluate(() => window.gemba.ready)), 'the dashboard started without a sign-in');
  await page.screenshot({ path: join(outDir, 'login.png') });

  step('a wrong password is refused');
  await page.fill('[data-testid=login-user]', 'admin');
  await page.fill('[data-testid=login-password]', 'not-the-password');
  await page.click('[data-testid=login-submit]');
  await page.waitForFunction(() => document.querySelector('[data-testid=login-error]')?.textContent.length > 0);
  figures.wrong_password_message = await page.textContent('[data-testid=login-error]');

  step('the one-time password leads to the password change');
  await page.fill('[data-testid=login-password]', oneTime);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=password-form]', { timeout: 10000 });
  await page.fill('[data-testid=login-old]', oneTime);
  await page.fill('[data-testid=login-new]', 'browser-admin-1');
  await page.fill('[data-testid=login-again]', 'browser-admin-2');
  await page.click('[data-testid=password-submit]');
  await page.waitForFunction(() => document.querySelector('[data-testid=password-error]')?.textContent.length > 0);
  await page.fill('[data-testid=login-again]', 'browser-admin-1');
  const t0 = Date.now();
  await page.click('[data-testid=password-submit]');
  await page.waitForFunction(() => window.gemba?.ready === true, null, { timeout: 15000 });
  figures.sign_in_to_dashboard_ms = Date.now() - t0;
  const user = await page.textContent('[data-testid=user]');
  check(user.includes('admin'), `the header shows ${JSON.stringify(user)}`);
  check(await page.locator('[data-testid=machine-card]').count() > 0, 'no machine cards after signing in');

  step('the session cookie is HttpOnly');
  check(!(await page.evaluate(() => document.cookie.includes('gemba_session'))), 'scripts can read the session cookie');

  step('signing out in Chinese shows the Chinese sign-in');
  await page.selectOption('[data-testid=lang]', 'zh-CN');
  await page.waitForFunction(() => document.querySelector('nav a[data-page=overview]')?.textContent === '工厂总览', null, { timeout: 15000 });
  await page.click('[data-testid=logout]');
  await page.waitForSelector('[data-testid=login-form]', { timeout: 10000 });
  const title = await page.textContent('[data-testid=login-form] h2');
  check(title.includes('登录'), `sign-in title in zh-CN: ${title}`);
  await page.screenshot({ path: join(outDir, 'login-zh.png') });

  step('the new password works');
  await page.fill('[data-testid=login-user]', 'admin');
  await page.fill('[data-testid=login-password]', 'browser-admin-1');
  await page.click('[data-testid=login-submit]');
  await page.waitForFunction(() => window.gemba?.ready === true, null, { timeout: 15000 });
  check(errors.length === 0, errors.join('\n'));
  console.log(JSON.stringify(figures));
} catch (e) {
  console.error(`login test failed: ${e.message}`);
  if (errors.length) console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
