// Translations (web/i18n/*.json, flat keys) and locale-aware formatting through Intl.
const SUPPORTED = ['en', 'zh-CN'];
const KEY = 'gemba.lang';
let dict = {};
let locale = 'en';
let nf = new Map();
let dtf = null;
let dtShort = null;

export function initialLocale() {
  const saved = localStorage.getItem(KEY);
  if (SUPPORTED.includes(saved)) return saved;
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export async function setLocale(l) {
  if (!SUPPORTED.includes(l)) l = 'en';
  const r = await fetch(`/i18n/${l}.json`);
  dict = await r.json();
  locale = l;
  nf = new Map();
  dtf = new Intl.DateTimeFormat(l, { dateStyle: 'short', timeStyle: 'medium' });
  dtShort = new Intl.DateTimeFormat(l, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  localStorage.setItem(KEY, l);
  document.documentElement.lang = l;
  apply(document);
}

export const getLocale = () => locale;

/** The text of `key` with `{name}` placeholders filled; the key itself when missing. */
export function t(key, vars) {
  let s = dict[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, v);
  return s;
}

/** `t` for keys that may be missing: the fallback instead of the key. */
export function tOr(key, fallback) {
  return dict[key] ?? fallback;
}

export function apply(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}

export function num(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  let f = nf.get(digits);
  if (!f) {
    f = new Intl.NumberFormat(locale, { maximumFractionDigits: digits });
    nf.set(digits, f);
  }
  return f.format(v);
}

export const dateTime = (ts) => dtf.format(new Date(ts));
export const clock = (ts) => dtShort.format(new Date(ts));

/** A duration in ms as a short localised text (for aggregate steps). */
export function duration(ms) {
  const units = [['day', 86400000], ['hour', 3600000], ['minute', 60000], ['second', 1000]];
  for (const [unit, size] of units) {
    if (ms >= size && ms % size === 0) {
      return new Intl.NumberFormat(locale, { style: 'unit', unit, unitDisplay: 'short' }).format(ms / size);
    }
  }
  return `${ms} ms`;
}
