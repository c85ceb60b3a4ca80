// Small DOM helpers shared by the pages.
import { t, tOr, num } from './i18n.js';

/** h('div.card', {onclick}, child, 'text', …): an element with classes, attributes, children. */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    // Through the CSSOM: the Content-Security-Policy (style-src 'self') blocks style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An element whose text is the translation of `key` (re-translated on a language switch). */
export function tr(tag, key, attrs) {
  const el = h(tag, attrs, t(key));
  el.dataset.i18n = key;
  return el;
}

export const STATE_COLOURS = {
  running: '#2e9d4f',
  idle: '#d9a21b',
  setup: '#3b7dd8',
  down: '#d64045',
};

export function stateColour(state) {
  return STATE_COLOURS[state] || '#8a8f98';
}

export function stateLabel(state) {
  return state ? tOr(`state.${state}`, state) : t('state.unknown');
}

export function signalLabel(name) {
  return tOr(`signal.${name}`, name);
}

/** The stored type name of an event: `state`, `production`, `move` or `custom:<name>`. */
export function eventType(e) {
  return e.type === 'custom' ? `custom:${e.name}` : e.type;
}

export function typeLabel(type) {
  return tOr(`type.${type}`, type);
}

/** A latest value as text: the state name for state signals, else the number and its unit. */
export function valueText(v) {
  if (!v) return '–';
  if (v.state !== undefined) return stateLabel(v.state);
  const abs = Math.abs(v.value);
  const digits = abs >= 1000 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return `${num(v.value, digits)}${v.unit ? ` ${v.unit}` : ''}`;
}

export function errorBox(err) {
  return h('p.error', {}, t('common.error', { msg: err.message || String(err) }));
}
