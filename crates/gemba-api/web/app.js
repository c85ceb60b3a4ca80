// Gemba dashboard: a single page with hash routing. No build step; plain ES modules.
//   #/                     plant overview
//   #/machine/<path>       one machine: live chart, state timeline, production, energy
//   #/events               events with filters
//   #/quality              SPC chart, violations and capability of a quality characteristic
//   #/models               model registry
//   #/alarms               alarms: list, filters, explanation, acknowledge / comment / close
//   #/logistics            inventory and WIP, lots, dwell, genealogy with process data
//   #/energy               energy per shift/day/month, kWh per good part, CO2e per lot
//   #/production           OEE of a line or machine, the six big losses and their causes
//   #/maintenance          work orders (assign, start, done, notes, parts), MTBF / MTTR
import { initialLocale, setLocale, getLocale, t } from './i18n.js';
import { connect, onStatus } from './api.js';
import { h, tr } from './ui.js';
import { signIn, userBadge } from './login.js';
import * as overview from './pages/overview.js';
import * as machine from './pages/machine.js';
import * as events from './pages/events.js';
import * as models from './pages/models.js';
import * as quality from './pages/quality.js';
import * as alarms from './pages/alarms.js';
import * as logistics from './pages/logistics.js';
import * as energy from './pages/energy.js';
import * as production from './pages/production.js';
import * as maintenance from './pages/maintenance.js';

// Figures the browser tests read (web-tests/dashboard.mjs).
window.gemba = { ready: false, firstRenderMs: null, charts: [] };

const main = document.getElementById('main');
let cleanup = null;

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const [page, ...rest] = hash.split('/');
  switch (page) {
    case '':
    case 'overview': return ['overview', overview, {}];
    case 'machine': return ['overview', machine, { path: rest.join('/') }];
    case 'events': return ['events', events, {}];
    case 'models': return ['models', models, {}];
    case 'quality': return ['quality', quality, {}];
    case 'alarms': return ['alarms', alarms, {}];
    case 'logistics': return ['logistics', logistics, {}];
    case 'energy': return ['energy', energy, {}];
    case 'production': return ['production', production, {}];
    case 'maintenance': return ['maintenance', maintenance, {}];
    default: return ['overview', overview, {}];
  }
}

async function show() {
  if (cleanup) cleanup();
  cleanup = null;
  const [name, page, params] = route();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.page === name);
  main.replaceChildren();
  const root = h('section', { 'data-page': name });
  main.append(root);
  try {
    cleanup = (await page.render(root, params)) || null;
  } catch (err) {
    console.error(err);
    root.append(h('p.error', {}, t('common.error', { msg: err.message })));
  }
}

async function start() {
  const lang = document.getElementById('lang');
  await setLocale(initialLocale());
  lang.value = getLocale();
  lang.addEventListener('change', async () => {
    await setLocale(lang.value);
    // Not signed in yet: the sign-in form is drawn again in the new language.
    if (!window.gemba.user) { location.reload(); return; }
    await show();
  });
  // Sign in first (docs/SECURITY.md); with authentication off the server answers as "anonymous".
  const me = await signIn(main);
  window.gemba.user = me;
  document.getElementById('live').after(userBadge(me));
  const live = document.getElementById('live');
  onStatus((s) => {
    live.dataset.status = s;
    live.dataset.i18n = `live.${s}`;
    live.textContent = t(`live.${s}`);
  });
  window.addEventListener('hashchange', show);
  await show();
  connect();
  window.gemba.firstRenderMs = Math.round(performance.now());
  window.gemba.ready = true;
}

start();
