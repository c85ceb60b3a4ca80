// The start every browser test shares: its two arguments (the server's URL and the folder for
// screenshots), Debian's Chromium through playwright-core with the flags the dashboard issue names,
// and a clear message and exit status 2 (usage) or 3 (something to install) when a part is missing.
import { existsSync, mkdirSync } from 'node:fs';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
  '--disable-background-networking', '--disable-component-update', '--no-first-run',
  '--disable-sync', '--disable-quic'];

/// Parses `URL OUTDIR` (plus what `extraOk` checks), creates OUTDIR and launches Chromium.
export async function launch(usage, { args = CHROMIUM_ARGS, extraOk = true } = {}) {
  const [base, outDir] = process.argv.slice(2);
  if (!base || !outDir || !extraOk) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  const executablePath = process.env.GEMBA_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    console.error(`Chromium is missing at ${executablePath}: install it with \`apt-get install -y chromium\` (or set GEMBA_CHROMIUM)`);
    process.exit(3);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    console.error('playwright-core is missing: run `npm ci --prefix web-tests`');
    process.exit(3);
  }
  mkdirSync(outDir, { recursive: true });
  const browser = await chromium.launch({ executablePath, headless: true, args });
  return { base, outDir, browser };
}
