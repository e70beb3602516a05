// Small DOM helpers. Server data only ever reaches the page as text nodes
// (through h() or textContent); the one exception is setHighlight(), which
// escapes everything and re-allows only <mark> tags.

const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple', 'tabIndex', 'title']);

/** Creates an element. Children that are strings become text nodes. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const ENTITIES = { '&lt;': '<', '&gt;': '>', '&amp;': '&', '&quot;': '"', '&#39;': "'", '&#x27;': "'" };

/** Escapes all HTML, then turns the escaped <mark> and </mark> back into
 * tags: the result can hold no other element or attribute. A snippet whose
 * text the search engine already escaped is unescaped first (only the five
 * basic entities), so that it is neither shown double-escaped nor trusted. */
export function sanitizeHighlight(s) {
  return String(s)
    .replace(/&(?:lt|gt|amp|quot|#39|#x27);/gi, (e) => ENTITIES[e.toLowerCase()])
    .replace(/[&<>"']/g, (c) => ESCAPES[c])
    .replace(/&lt;(\/?)mark&gt;/gi, '<$1mark>');
}

/** Renders a search highlight into el. */
export function setHighlight(el, s) {
  el.innerHTML = sanitizeHighlight(s);
}

/** The reader's locales (the browser's languages), for every date and time shown. */
export function locales() {
  const nav = globalThis.navigator;
  return nav && nav.languages && nav.languages.length ? [...nav.languages] : undefined;
}

/** A time of day in the reader's locale, with the date when not today. */
export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const time = d.toLocaleTimeString(locales(), { hour: 'numeric', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  return d.toLocaleDateString(locales(), { month: 'short', day: 'numeric' }) + ' ' + time;
}

/** Just the time of day, in the reader's locale. */
export function formatClock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString(locales(), { hour: 'numeric', minute: '2-digit' });
}

/** "Today", "Yesterday" or the full date, in the reader's locale. */
export function formatDay(d, now = new Date()) {
  const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const diff = Math.round((day(now) - day(d)) / 86400000);
  if (diff === 0) return 'Today';
  if (diff === 1) return 'Yesterday';
  return d.toLocaleDateString(locales(), {
    weekday: 'long', month: 'long', day: 'numeric', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric',
  });
}

export function formatSize(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** One or two initials: of the first and last word of a display name
 * ("Alice Liddell" → "AL"), or the first letter of an id. */
export function initials(name) {
  const words = String(name || '').trim().split(/[\s._@-]+/u).filter((w) => /[\p{L}\p{N}]/u.test(w));
  if (!words.length) return '?';
  const first = (w) => (w.match(/[\p{L}\p{N}]/u) || ['?'])[0].toUpperCase();
  return words.length === 1 ? first(words[0]) : first(words[0]) + first(words[words.length - 1]);
}

/** A stable hue per user id, for avatars. */
export function hue(id) {
  let x = 0;
  for (const ch of String(id)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

/** A round avatar: initials of the name, a colour from the user id (so it
 * stays the same when the name changes). */
export function avatar(id, extraClass = '', name = '') {
  const label = name && name !== id ? name : String(id || '').split(/[-_.@]/)[0];
  const el = h('span', { class: 'avatar ' + extraClass, 'aria-hidden': 'true', dataset: { uid: id } }, initials(label));
  el.dataset.hue = String(Math.floor(hue(id) / 30)); // 12 colour classes in CSS, no inline styles
  return el;
}

/** Announces text to screen readers through the polite live region. */
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

export function errorText(err) {
  if (!err) return 'Something went wrong.';
  if (err.status === 0) return 'The server could not be reached.';
  if (err.status === 403) return 'You are not allowed to do that.';
  if (err.status === 404) return 'Not found.';
  if (err.status === 413) return 'That is too large.';
  if (err.status === 429) return 'Too many requests; try again in a moment.';
  return err.message || 'Something went wrong.';
}
