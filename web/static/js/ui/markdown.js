// A safe subset of Markdown for message text: **bold**, *italic* (or
// _italic_), `code`, ``` code blocks ```, [links](https://…) and bare
// http(s) links, and "- " / "1. " lists. parse() turns text into a small tree
// of plain objects; renderMarkdown() builds DOM nodes from that tree with
// createElement and text nodes only, so no part of a message ever reaches
// an HTML parser, and a link's href is only ever http:, https: or mailto:.
import { h } from './dom.js';

const MAX_DEPTH = 8; // nesting of bold/italic/links, so that no input recurses deeply
const URL_AT = /^https?:\/\/[^\s<>"']*[^\s<>"'.,;:!?)\]*_]/;
const LINK_AT = /^\[([^\]\n]{1,500})\]\(([^()\s]{1,2000})\)/;
const ITEM = /^(\s{0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;

/** Whether href may become a link: http(s) or mailto URLs only. */
export function safeHref(href) {
  let u;
  try { u = new URL(href); } catch { return null; }
  return u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:' ? u.href : null;
}

/**
 * Parses text into blocks: {t:'p', c:[inline]}, {t:'pre', v}, {t:'ul'|'ol',
 * items:[[inline]]}. Inline nodes: {t:'text', v}, {t:'strong'|'em', c},
 * {t:'code', v}, {t:'a', href, c}.
 */
export function parse(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let para = [];
  const flush = () => {
    if (para.length) blocks.push({ t: 'p', c: inline(para.join('\n'), 0) });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s{0,3}```/.test(line)) {
      // A fenced block runs to the closing fence (or the end of the text).
      flush();
      const body = [];
      let j = i + 1;
      while (j < lines.length && !/^\s{0,3}```\s*$/.test(lines[j])) body.push(lines[j++]);
      blocks.push({ t: 'pre', v: body.join('\n') });
      i = j;
      continue;
    }
    const m = ITEM.exec(line);
    if (m) {
      flush();
      const ordered = /\d/.test(m[2]);
      const kind = ordered ? 'ol' : 'ul';
      const last = blocks[blocks.length - 1];
      const item = inline(m[3], 0);
      if (last && last.t === kind && last.open) last.items.push(item);
      else {
        const b = { t: kind, items: [item], open: true };
        if (ordered) b.start = Number.parseInt(m[2], 10);
        blocks.push(b);
      }
      continue;
    }
    if (blocks.length && blocks[blocks.length - 1].open) {
      blocks[blocks.length - 1].open = false;
      if (!line.trim()) continue; // a blank line after a list just ends it
    }
    para.push(line);
  }
  flush();
  for (const b of blocks) delete b.open;
  return blocks;
}

/** Parses the inline spans of s. */
export function inline(s, depth) {
  const out = [];
  let text = '';
  const push = (node) => {
    if (text) { out.push({ t: 'text', v: text }); text = ''; }
    out.push(node);
  };
  let i = 0;
  while (i < s.length) {
    const ch = s[i];
    const rest = s.slice(i);
    if (ch === '\\' && i + 1 < s.length && /[\\`*_[\]()#+\-.!~>]/.test(s[i + 1])) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    if (ch === '`') {
      const end = s.indexOf('`', i + 1);
      if (end > i + 1) { push({ t: 'code', v: s.slice(i + 1, end) }); i = end + 1; continue; }
    }
    if (depth < MAX_DEPTH) {
      if (rest.startsWith('**') || rest.startsWith('__')) {
        const mark = rest.slice(0, 2);
        const end = s.indexOf(mark, i + 2);
        if (end > i + 2 && !/\s/.test(s[i + 2]) && !/\s/.test(s[end - 1]) && boundaryOk(s, i, end + 2, mark[0])) {
          push({ t: 'strong', c: inline(s.slice(i + 2, end), depth + 1) });
          i = end + 2;
          continue;
        }
      }
      if (ch === '*' || ch === '_') {
        const end = findClosing(s, i + 1, ch);
        if (end > i + 1 && !/\s/.test(s[i + 1]) && !/\s/.test(s[end - 1]) && boundaryOk(s, i, end + 1, ch)) {
          push({ t: 'em', c: inline(s.slice(i + 1, end), depth + 1) });
          i = end + 1;
          continue;
        }
      }
      if (ch === '[') {
        const m = LINK_AT.exec(rest);
        const href = m && safeHref(m[2]);
        if (href) { push({ t: 'a', href, c: inline(m[1], depth + 1) }); i += m[0].length; continue; }
      }
    }
    if ((ch === 'h' || ch === 'H') && (i === 0 || !/[A-Za-z0-9]/.test(s[i - 1]))) {
      const m = URL_AT.exec(rest);
      const href = m && safeHref(m[0]);
      if (href) { push({ t: 'a', href, c: [{ t: 'text', v: m[0] }] }); i += m[0].length; continue; }
    }
    text += ch;
    i++;
  }
  if (text) out.push({ t: 'text', v: text });
  return out;
}

// A single * or _ closes at the next same character that is not part of a
// double one.
function findClosing(s, from, ch) {
  for (let j = from; j < s.length; j++) {
    if (s[j] === '\n' && s[j + 1] === '\n') return -1;
    if (s[j] === ch) {
      if (s[j + 1] === ch) { j++; continue; }
      return j;
    }
  }
  return -1;
}

// Underscores inside words (snake_case) are not emphasis.
function boundaryOk(s, start, end, ch) {
  if (ch !== '_') return true;
  return !(start > 0 && /[A-Za-z0-9]/.test(s[start - 1])) && !(end < s.length && /[A-Za-z0-9]/.test(s[end]));
}

function inlineDom(nodes) {
  return nodes.map((n) => {
    switch (n.t) {
      case 'text': return n.v;
      case 'strong': return h('strong', null, inlineDom(n.c));
      case 'em': return h('em', null, inlineDom(n.c));
      case 'code': return h('code', null, n.v);
      case 'a': return h('a', { href: n.href, target: '_blank', rel: 'noopener noreferrer nofollow' }, inlineDom(n.c));
      default: return '';
    }
  });
}

/** The DOM nodes (an array) for text: paragraphs, code blocks and lists. */
export function renderMarkdown(text) {
  return parse(text).map((b) => {
    switch (b.t) {
      case 'pre': return h('pre', null, h('code', null, b.v));
      case 'ul': return h('ul', null, b.items.map((it) => h('li', null, inlineDom(it))));
      case 'ol': return h('ol', { start: b.start && b.start !== 1 ? String(b.start) : null }, b.items.map((it) => h('li', null, inlineDom(it))));
      default: return h('p', null, inlineDom(b.c));
    }
  });
}

/** The plain text of a message for one-line previews (markers dropped). */
export function plainText(text) {
  const walk = (nodes) => nodes.map((n) => (n.t === 'text' || n.t === 'code' ? n.v : walk(n.c || []))).join('');
  return parse(text).map((b) => (b.t === 'pre' ? b.v : b.t === 'p' ? walk(b.c) : b.items.map(walk).join(' · '))).join(' ');
}
