// Unit tests of the reference client's protocol logic (no browser, no
// server): dedup by (conversation_id, seq), gap repair, cursor keeping,
// resync on a cursor-less start, optimistic send confirmation, backoff, and
// the search-highlight sanitizer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyClient, backoffDelay, ApiError } from '../client/parley-client.js';
import { sanitizeHighlight } from '../static/js/ui/dom.js';

function recorder(client) {
  const seen = [];
  client.addEventListener('event', (e) => seen.push(e.detail));
  return seen;
}

const ev = (cid, seq, extra = {}) => ({ type: 'message.created', conversation_id: cid, seq, cursor: `cur-${cid}-${seq}`, message: { id: `m${seq}`, sender_id: 'bob', text: `t${seq}` }, ...extra });

function streamCtx(client, withCursor = 'x') {
  return { gen: client._gen, withCursor, opened: true };
}

test('durable events are delivered once per (conversation_id, seq), in order', async () => {
  const c = new ParleyClient({ token: 't' });
  const seen = recorder(c);
  const ctx = streamCtx(c);
  await c._enqueueBatch([ev('a', 1), ev('a', 2), ev('b', 1), ev('a', 2), ev('a', 3), ev('b', 1)], ctx);
  assert.deepEqual(seen.map((e) => `${e.conversation_id}${e.seq}`), ['a1', 'a2', 'b1', 'a3']);
});

test('setFloor drops events the application already loaded over REST', async () => {
  const c = new ParleyClient({ token: 't' });
  const seen = recorder(c);
  c.setFloor('a', 5);
  c.setFloor('a', 3); // never moves back
  await c._enqueueBatch([ev('a', 4), ev('a', 5), ev('a', 6)], streamCtx(c));
  assert.deepEqual(seen.map((e) => e.seq), [6]);
  assert.equal(c.cursor, 'cur-a-6');
});

test('a skipped seq is repaired from the durable log before the later event', async () => {
  const c = new ParleyClient({ token: 't' });
  const calls = [];
  c.request = async (method, path) => {
    calls.push(`${method} ${path}`);
    return { events: [ev('a', 2), ev('a', 3), ev('a', 4)], has_more: false };
  };
  const seen = recorder(c);
  await c._enqueueBatch([ev('a', 1), ev('a', 4)], streamCtx(c));
  assert.deepEqual(seen.map((e) => e.seq), [1, 2, 3, 4]);
  assert.deepEqual(calls, ['GET /v1/conversations/a/events?after=1&limit=2']);
  assert.equal(c.cursor, 'cur-a-4', 'the cursor comes from the stream, not from the repair');
});

test('the cursor is kept from ready and durable events, never from ephemeral ones', async () => {
  const c = new ParleyClient({ token: 't' });
  const ctx = streamCtx(c);
  await c._enqueueBatch([{ type: 'ready', user_id: 'me', cursor: 'r0', session_id: 's' }], ctx);
  assert.equal(c.cursor, 'r0');
  assert.equal(c.userId, 'me');
  await c._enqueueBatch([{ type: 'typing', conversation_id: 'a', user_id: 'bob' }, { type: 'presence', user_id: 'bob', online: true }], ctx);
  assert.equal(c.cursor, 'r0');
  await c._enqueueBatch([ev('a', 1)], ctx);
  assert.equal(c.cursor, 'cur-a-1');
});

test('a stream started without a cursor holds events until the resync has loaded state', async () => {
  const c = new ParleyClient({ token: 't' });
  const order = [];
  c.addEventListener('event', (e) => order.push(`event ${e.detail.seq}`));
  c.onResync = async () => {
    order.push('resync start');
    await new Promise((r) => setTimeout(r, 20));
    c.setFloor('a', 2); // REST says the conversation is at seq 2
    order.push('resync end');
  };
  const ctx = streamCtx(c, null);
  const a = c._enqueueBatch([{ type: 'ready', user_id: 'me', cursor: 'r' }], ctx);
  const b = c._enqueueBatch([ev('a', 2), ev('a', 3)], ctx);
  await Promise.all([a, b]);
  assert.deepEqual(order, ['resync start', 'resync end', 'event 3']);
});

test('a resumed stream (with a cursor) does not resync', async () => {
  const c = new ParleyClient({ token: 't' });
  let resyncs = 0;
  c.onResync = async () => { resyncs++; };
  await c._enqueueBatch([{ type: 'ready', user_id: 'me', cursor: 'r' }], streamCtx(c, 'old'));
  assert.equal(resyncs, 0);
});

test('an optimistic send is confirmed exactly once, by its 201 or by its own event', async () => {
  for (const eventFirst of [true, false]) {
    const c = new ParleyClient({ token: 't' });
    c.userId = 'me';
    const confirmed = [];
    const pending = [];
    c.addEventListener('send-pending', (e) => pending.push(e.detail.clientId));
    c.addEventListener('send-confirmed', (e) => confirmed.push(e.detail));
    const msg = { id: 'm1', conversation_id: 'a', seq: 1, sender_id: 'me', client_id: 'c-1', text: 'hi' };
    let answer;
    c.request = (method, path, body, opts) => {
      assert.equal(method, 'POST');
      assert.equal(path, '/v1/conversations/a/messages');
      assert.deepEqual(body, { text: 'hi', client_id: 'c-1' });
      assert.equal(opts.headers['Idempotency-Key'], 'c-1');
      return new Promise((r) => { answer = () => r(msg); });
    };
    const sent = c.send('a', { text: 'hi', clientId: 'c-1' });
    assert.deepEqual(pending, ['c-1']);
    const event = { type: 'message.created', conversation_id: 'a', seq: 1, cursor: 'x', message: msg };
    if (eventFirst) { await c._enqueueBatch([event], streamCtx(c)); answer(); await sent; }
    else { answer(); await sent; await c._enqueueBatch([event], streamCtx(c)); }
    assert.equal(confirmed.length, 1, `confirmed ${confirmed.length} times (event first: ${eventFirst})`);
    assert.equal(confirmed[0].message.id, 'm1');
  }
});

test('a refused send is reported failed at once; retrying reuses its client_id', async () => {
  const c = new ParleyClient({ token: 't' });
  const failed = [];
  c.addEventListener('send-failed', (e) => failed.push(e.detail));
  const bodies = [];
  c.request = async (method, path, body) => {
    bodies.push(body);
    if (bodies.length === 1) throw new ApiError(403, 'forbidden', 'not a member');
    return { id: 'm1', conversation_id: 'a', seq: 1, sender_id: 'me', client_id: body.client_id };
  };
  await c.send('a', { text: 'x', clientId: 'c-9' });
  assert.equal(failed.length, 1);
  assert.equal(failed[0].error.status, 403);
  const msg = await c.send('a', { text: 'x', clientId: 'c-9' });
  assert.equal(msg.id, 'm1');
  assert.deepEqual(bodies.map((b) => b.client_id), ['c-9', 'c-9']);
});

test('read markers only move forward and typing is throttled', async () => {
  const c = new ParleyClient({ token: 't' });
  const calls = [];
  c.request = async (method, path, body) => { calls.push(`${method} ${path} ${body ? JSON.stringify(body) : ''}`.trim()); return null; };
  await c.markRead('a', 5);
  await c.markRead('a', 5);
  await c.markRead('a', 3);
  await c.markRead('a', 7);
  await c.typing('a');
  await c.typing('a');
  assert.deepEqual(calls, [
    'POST /v1/conversations/a/read {"seq":5}',
    'POST /v1/conversations/a/read {"seq":7}',
    'POST /v1/conversations/a/typing',
  ]);
});

test('backoff is full jitter: uniform in [0, min(cap, base·2^attempt))', () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  assert.equal(backoffDelay(0, { base: 500, random: () => 0.5 }), 250);
  assert.equal(backoffDelay(3, { base: 500, cap: 15000, random: () => 0.999999 }), 3999);
  assert.equal(backoffDelay(30, { base: 500, cap: 15000, random: () => 0.999999 }), 14999);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(5);
    assert.ok(d >= 0 && d < 15000);
  }
});

test('search highlights keep only <mark> tags', () => {
  assert.equal(sanitizeHighlight('a <mark>zebra</mark> b'), 'a <mark>zebra</mark> b');
  assert.equal(sanitizeHighlight('<script>alert(1)</script><MARK>x</MARK>'), '&lt;script&gt;alert(1)&lt;/script&gt;<mark>x</mark>');
  assert.equal(sanitizeHighlight('<img src=x onerror="y"> <mark class="x">z</mark>'),
    '&lt;img src=x onerror=&quot;y&quot;&gt; &lt;mark class=&quot;x&quot;&gt;z&lt;/mark&gt;'.replace('&lt;/mark&gt;', '</mark>'));
  // Snippets the engine already escaped are shown as the text they stand for.
  assert.equal(sanitizeHighlight('&lt;b&gt;bold&lt;/b&gt; &amp; <mark>x</mark>'), '&lt;b&gt;bold&lt;/b&gt; &amp; <mark>x</mark>');
  assert.equal(sanitizeHighlight('&lt;mark&gt;'), '<mark>');
});

function runningClient(opts = {}) {
  const c = new ParleyClient({ token: 't', ...opts });
  const connects = [];
  c._running = true;
  c._connect = () => { connects.push(c.transport); c._gen++; };
  c._gen = 1;
  return { c, connects };
}

test('cursor_expired drops the cursor, tells the application and reconnects at once', async () => {
  const { c, connects } = runningClient();
  c.cursor = 'old';
  let expired = 0;
  c.addEventListener('cursor-expired', () => expired++);
  c._connectionLost({ gen: c._gen, withCursor: 'old', opened: true }, { expired: true });
  assert.equal(c.cursor, null);
  assert.equal(expired, 1);
  await new Promise((r) => setTimeout(r, 300)); // "at once": under 250 ms of jitter
  assert.deepEqual(connects, ['websocket']);
  c.stop();
});

test('auto mode falls back WebSocket → SSE → long-poll after two failures to open each', () => {
  const { c } = runningClient();
  c.backoff = { base: 1, cap: 1 };
  const fail = () => c._connectionLost({ gen: c._gen, opened: false }, {});
  fail();
  assert.equal(c.transport, 'websocket');
  fail();
  assert.equal(c.transport, 'sse');
  fail(); fail();
  assert.equal(c.transport, 'longpoll');
  fail(); fail();
  assert.equal(c.transport, 'longpoll');
  c.stop();
});

test('a forced transport never falls back, and a connection that opened resets the count', () => {
  const { c } = runningClient({ transport: 'sse' });
  c.backoff = { base: 1, cap: 1 };
  for (let i = 0; i < 5; i++) c._connectionLost({ gen: c._gen, opened: false }, {});
  assert.equal(c.transport, 'sse');
  c.stop();
  const auto = runningClient().c;
  auto.backoff = { base: 1, cap: 1 };
  auto._connectionLost({ gen: auto._gen, opened: false }, {});
  auto._openFailures = 0; // what a successful open does
  auto._connectionLost({ gen: auto._gen, opened: false }, {});
  assert.equal(auto.transport, 'websocket');
  auto.stop();
});

test('a stale connection cannot trigger a reconnect, and one loss reconnects once', async () => {
  const { c, connects } = runningClient();
  c.backoff = { base: 1, cap: 1 };
  c._connectionLost({ gen: c._gen - 1, opened: true }, {}); // from an older connection
  const ctx = { gen: c._gen, opened: true };
  c._connectionLost(ctx, {});
  c._connectionLost(ctx, {}); // error and close of the same connection
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(connects, ['websocket']);
  c.stop();
});

test('close 4401 reports unauthorized and stops reconnecting', async () => {
  const { c, connects } = runningClient();
  let unauthorized = 0;
  c.addEventListener('unauthorized', () => unauthorized++);
  c._connectionLost({ gen: c._gen, opened: true }, { unauthorized: new ApiError(401, 'unauthorized', 'x') });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(unauthorized, 1);
  assert.deepEqual(connects, []);
  assert.equal(c.state, 'stopped');
});

test('after a fallback, auto mode probes WebSocket with backoff and steps back up when it opens', async () => {
  const { c, connects } = runningClient({ baseUrl: 'http://parley.test', upgradeProbe: { base: 20, max: 80 } });
  c.backoff = { base: 1, cap: 1 };
  c.ticket = async () => 'tk';
  const opened = [];
  let probes = 0;
  const saved = globalThis.WebSocket;
  // The first two probes fail (the server is still down for WebSocket), the third opens.
  globalThis.WebSocket = class extends EventTarget {
    constructor(url) {
      super();
      probes++;
      this.url = url;
      const n = probes;
      setTimeout(() => this.dispatchEvent(new Event(n < 3 ? 'close' : 'open')), 1);
    }
    close() { opened.push(this.url); }
  };
  try {
    const fail = () => c._connectionLost({ gen: c._gen, opened: false }, {});
    fail(); fail(); fail(); fail();
    assert.equal(c.transport, 'longpoll');
    clearTimeout(c._retryTimer); // the reconnect the last failure scheduled: not part of this test
    connects.length = 0;
    // Long-polling gets through: its first answer plays `ready`.
    await c._enqueueBatch([{ type: 'ready', user_id: 'me', cursor: null, _poll: true }], { gen: c._gen, withCursor: 'cur', opened: true });
    assert.equal(c.state, 'connected');
    await eventually(() => c.transport === 'websocket', 3000);
    assert.equal(probes, 3, 'failed probes are retried');
    assert.ok(opened[0].includes('ticket=tk') && !opened[0].includes('access_token'), opened[0]);
    assert.deepEqual(connects, ['websocket'], 'the stream reconnects over WebSocket once');
    // A forced transport never probes.
    const forced = runningClient({ transport: 'longpoll', upgradeProbe: { base: 1, max: 1 } }).c;
    await forced._enqueueBatch([{ type: 'ready', user_id: 'me', _poll: true }], { gen: forced._gen, withCursor: 'c', opened: true });
    assert.equal(forced._upgrade, null);
    forced.stop();
  } finally {
    globalThis.WebSocket = saved;
    c.stop();
  }
});

async function eventually(pred, ms) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ------------------------------------------------------------- Markdown

import { parse as parseMarkdown, inline as parseInline, safeHref, plainText } from '../static/js/ui/markdown.js';

/** Every node kind and href that a parse tree holds. */
function kinds(blocks) {
  const seen = new Set(), hrefs = [];
  const walk = (n) => {
    seen.add(n.t);
    if (n.href) hrefs.push(n.href);
    for (const c of n.c || []) walk(c);
    for (const it of n.items || []) it.forEach(walk);
  };
  blocks.forEach(walk);
  return { seen, hrefs };
}

test('markdown: bold, italic, code, code blocks, links and lists', () => {
  assert.deepEqual(parseInline('**bold** and *it* and _it2_ and `x<y`', 0), [
    { t: 'strong', c: [{ t: 'text', v: 'bold' }] }, { t: 'text', v: ' and ' },
    { t: 'em', c: [{ t: 'text', v: 'it' }] }, { t: 'text', v: ' and ' },
    { t: 'em', c: [{ t: 'text', v: 'it2' }] }, { t: 'text', v: ' and ' }, { t: 'code', v: 'x<y' },
  ]);
  assert.deepEqual(parseInline('see [the docs](https://example.com/a?b=1) or https://x.org/p.', 0), [
    { t: 'text', v: 'see ' }, { t: 'a', href: 'https://example.com/a?b=1', c: [{ t: 'text', v: 'the docs' }] },
    { t: 'text', v: ' or ' }, { t: 'a', href: 'https://x.org/p', c: [{ t: 'text', v: 'https://x.org/p' }] }, { t: 'text', v: '.' },
  ]);
  assert.deepEqual(parseMarkdown('Plan:\n- one\n- **two**\n\n1. first\n2. second\n```\nlet a = 1 < 2;\n```\nbye'), [
    { t: 'p', c: [{ t: 'text', v: 'Plan:' }] },
    { t: 'ul', items: [[{ t: 'text', v: 'one' }], [{ t: 'strong', c: [{ t: 'text', v: 'two' }] }]] },
    { t: 'ol', start: 1, items: [[{ t: 'text', v: 'first' }], [{ t: 'text', v: 'second' }]] },
    { t: 'pre', v: 'let a = 1 < 2;' },
    { t: 'p', c: [{ t: 'text', v: 'bye' }] },
  ]);
  // Not emphasis: snake_case, lone stars, escaped markers.
  assert.deepEqual(parseInline('snake_case_name 2 * 3 * 4 \\*no\\*', 0), [{ t: 'text', v: 'snake_case_name 2 * 3 * 4 *no*' }]);
  assert.equal(plainText('**Hi** `there`\n- a\n- b'), 'Hi there a · b');
});

test('markdown: script injection stays text, and links are only http(s) or mailto', () => {
  const attacks = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '[click](javascript:alert(1))',
    '[click](JaVaScRiPt:alert(1))',
    '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '[x](vbscript:msgbox(1))',
    '**<b onmouseover=alert(1)>**',
    '```\n</code></pre><script>alert(1)</script>\n```',
    '[a](https://ok.example/"onmouseover="alert(1))',
    'javascript:alert(1)',
    '*'.repeat(5000) + '_'.repeat(5000) + '['.repeat(2000),
  ];
  for (const a of attacks) {
    const { seen, hrefs } = kinds(parseMarkdown(a));
    for (const k of seen) assert.ok(['p', 'text', 'strong', 'em', 'code', 'pre', 'a', 'ul', 'ol'].includes(k), `${a}: node ${k}`);
    for (const href of hrefs) assert.match(href, /^(https?:|mailto:)/, `${a}: href ${href}`);
  }
  assert.equal(kinds(parseMarkdown('[click](javascript:alert(1))')).hrefs.length, 0);
  assert.equal(safeHref('javascript:alert(1)'), null);
  assert.equal(safeHref(' https://ok.example/'), 'https://ok.example/');
  // Text keeps every character: what looks like markup is shown as typed.
  assert.deepEqual(parseMarkdown('<script>alert(1)</script>'), [{ t: 'p', c: [{ t: 'text', v: '<script>alert(1)</script>' }] }]);
});

test('the markdown renderer and the UI modules never assign innerHTML or use insertAdjacentHTML', async () => {
  const { readFile, readdir } = await import('node:fs/promises');
  const dir = new URL('../static/js/ui/', import.meta.url);
  for (const f of await readdir(dir)) {
    const src = await readFile(new URL(f, dir), 'utf8');
    const uses = src.match(/\.innerHTML\s*=|outerHTML\s*=|insertAdjacentHTML|document\.write/g) || [];
    // dom.js's setHighlight is the one reviewed exception (escaped whole, then <mark> only).
    assert.equal(uses.length, f === 'dom.js' ? 1 : 0, `${f}: ${uses.join(', ')}`);
  }
});
