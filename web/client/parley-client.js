// Parley reference client: every piece of the v1 wire protocol the web
// client speaks lives in this one module, so that authors of other clients
// can read it top to bottom. It has no user-interface code; the UI listens to
// the events it emits (see ParleyClient below) and calls its methods.
//
// What it covers:
//  - REST calls with bearer auth and the error shape {"error":{code,…}};
//  - one realtime stream over WebSocket, Server-Sent Events or long-polling,
//    chosen automatically (WebSocket; after two failures to open, SSE; after
//    two more, long-polling) or forced; a fallen-back connection keeps
//    probing WebSocket with backoff and steps back up when it opens again;
//  - the resume cursor: kept from `ready`, from every durable event and from
//    every poll answer, passed on every reconnect, on any transport;
//  - reconnect with full-jitter exponential backoff, and at once (with the
//    cursor) when the server closes with 1001 or 1013;
//  - cursor_expired (HTTP 410 / close 4410): drop the cursor, reconnect
//    without one and ask the application to reload its state over REST;
//  - dedup of durable events by (conversation_id, seq), with gap repair from
//    GET /v1/conversations/{cid}/events when a seq is skipped;
//  - optimistic sends identified by client_id: the same send confirmed by
//    its 201 answer and by its own message.created event is reported once.
//
// Sends, typing and read markers go over REST on every transport, which keeps
// them identical whichever transport carries the stream.

export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'longpoll']);
export const TRANSPORT_NAMES = Object.freeze({ websocket: 'WebSocket', sse: 'SSE', longpoll: 'Long-poll' });

/** Every event type the server sends on the stream (needed for SSE, whose
 * events arrive under their type as the event name). */
export const EVENT_TYPES = Object.freeze([
  'ready', 'message.created', 'message.updated', 'message.deleted',
  'reaction.added', 'reaction.removed', 'member.added', 'member.removed',
  'conversation.updated', 'read.updated', 'typing', 'presence', 'user.updated', 'error',
]);

const WS_SUBPROTOCOL = 'parley.v1';
const POLL_WAIT_SECONDS = 25;
const TYPING_INTERVAL_MS = 3000;
const HEARTBEAT_INTERVAL_MS = 20000;
const HEARTBEAT_TIMEOUT_MS = 10000;
const OPEN_FAILURES_BEFORE_FALLBACK = 2;
/** Step-up probes of WebSocket after a fallback: full jitter over
 * [cap/2, cap) where cap doubles from base up to max. */
const UPGRADE_PROBE = Object.freeze({ base: 2000, max: 60000 });

/** An error answer from the API, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, { requestId = '', retryAfter = null } = {}) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }
  /** Worth trying again later with the same request (and client_id). */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status === 503 || this.status === 502 || this.status === 504;
  }
}

async function errorFromResponse(res) {
  let code = '', message = '', requestId = '';
  try {
    const body = await res.json();
    if (body && body.error) ({ code = '', message = '', request_id: requestId = '' } = body.error);
  } catch { /* not JSON */ }
  const ra = Number(res.headers.get('Retry-After'));
  return new ApiError(res.status, code || `http_${res.status}`, message || res.statusText,
    { requestId, retryAfter: Number.isFinite(ra) && ra > 0 ? ra : null });
}

/** Development sign-in (only where the server has dev auth on). */
export async function devSignIn(userId, name, { baseUrl = '' } = {}) {
  const body = { user_id: userId };
  if (name) body.name = name;
  let res;
  try {
    res = await fetch(baseUrl + '/v1/auth/dev', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  if (!res.ok) throw await errorFromResponse(res);
  return res.json(); // {token, user:{id,name}}
}

/** A fresh client_id for an optimistic send. */
export function newClientId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === 'function') return 'c-' + globalThis.crypto.randomUUID();
  return 'c-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
}

/** Full-jitter exponential backoff: a uniformly random delay in
 * [0, min(cap, base·2^attempt)). */
export function backoffDelay(attempt, { base = 500, cap = 15000, random = Math.random } = {}) {
  return Math.floor(random() * Math.min(cap, base * 2 ** Math.min(attempt, 16)));
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

const enc = encodeURIComponent;

/**
 * ParleyClient talks to one Parley server as one user.
 *
 * Events (an EventTarget; each is a CustomEvent whose `detail` is given):
 *  - 'status'         {state, transport}: state is 'connecting', 'connected',
 *                     'reconnecting', 'offline' or 'stopped'; transport is a
 *                     TRANSPORTS entry.
 *  - 'event'          a stream event (durable events deduplicated, in seq
 *                     order per conversation; ephemeral typing/presence too).
 *  - 'send-pending'   {clientId, conversationId, text, attachments, replyTo}
 *  - 'send-confirmed' {clientId, conversationId, message}  (exactly once)
 *  - 'send-failed'    {clientId, conversationId, error, retryable}: retryable
 *                     failures (offline, 429, 5xx) are worth sending again
 *                     later with the same clientId.
 *  - 'cursor-expired' {}
 *  - 'unauthorized'   {error}: the token is missing, bad or expired.
 *
 * `onResync` (an async function) is called, with event delivery held back,
 * whenever the stream starts without a cursor: at first connect and after
 * cursor_expired. The application reloads its state over REST there and
 * calls setFloor(conversationId, last_seq) for what it loaded, so that stream
 * events it already has are dropped.
 */
export class ParleyClient extends EventTarget {
  constructor({ token, baseUrl = '', transport = 'auto', backoff = {}, upgradeProbe = {}, onResync = null } = {}) {
    super();
    this.token = token;
    this.baseUrl = baseUrl;
    this.userId = null;
    this.cursor = null;
    this.onResync = onResync;
    this.backoff = { base: 500, cap: 15000, ...backoff };
    this.upgradeProbe = { ...UPGRADE_PROBE, ...upgradeProbe };
    this.preferred = transport; // 'auto' or a TRANSPORTS entry
    this.state = 'stopped';
    this.transport = transport === 'auto' ? 'websocket' : transport;

    this._floors = new Map();        // conversation_id → highest seq delivered
    this._pending = new Map();       // client_id → send in flight
    this._confirmed = new Set();     // client_ids already confirmed (bounded)
    this._typingSent = new Map();    // conversation_id → time of last POST typing
    this._readSent = new Map();      // conversation_id → highest seq posted as read
    this._queue = Promise.resolve(); // serialises event processing
    this._gen = 0;                   // connection generation; stale callbacks compare against it
    this._attempt = 0;               // reconnect attempts since the last `ready`
    this._openFailures = 0;          // consecutive failures to open, for auto fallback
    this._conn = null;               // {close()} of the live transport
    this._retryTimer = null;
    this._upgrade = null;            // {timer, ws, attempt} while probing WebSocket after a fallback
    this._upgradeAttempt = 0;        // probes since the last fallback
    this._running = false;
    this._onOnline = () => { if (this._running) this.reconnectNow(); };
    this._onOffline = () => { if (this._running) this._goOffline(); };
  }

  // ---------------------------------------------------------------- REST

  _url(path) { return this.baseUrl + path; }

  /** One REST call. Resolves to the parsed JSON body (null for 204). */
  async request(method, path, body, { headers = {}, signal } = {}) {
    const h = { Accept: 'application/json', Authorization: 'Bearer ' + this.token, ...headers };
    const init = { method, headers: h, signal };
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(this._url(path), init);
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw new ApiError(0, 'network', 'The server could not be reached.');
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (res.status === 401) this._unauthorized(err);
      throw err;
    }
    if (res.status === 204) return null;
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  async me() {
    const me = await this.request('GET', '/v1/me');
    this.userId = me.id;
    return me;
  }

  /** Sets the caller's display name: {id, name}. */
  setName(name) { return this.request('PATCH', '/v1/me', { name }); }
  /** A profile {id, name}; 404 for someone who shares no conversation. */
  getUser(uid) { return this.request('GET', `/v1/users/${enc(uid)}`); }
  /** Directory search among the people the caller shares a conversation with. */
  searchUsers(q, limit = 20) { return this.request('GET', '/v1/users' + query({ q, limit })).then((r) => r.users || []); }
  /** A single-use, 60 s realtime ticket, so the long-lived token stays out of URLs. */
  ticket() { return this.request('POST', '/v1/tickets').then((r) => r.ticket); }

  listConversations() { return this.request('GET', '/v1/conversations').then((r) => r.conversations || []); }
  getConversation(cid) { return this.request('GET', `/v1/conversations/${enc(cid)}`); }
  createConversation({ kind = 'group', title = '', members = [] }) {
    return this.request('POST', '/v1/conversations', { kind, title, members });
  }
  renameConversation(cid, title) { return this.request('PATCH', `/v1/conversations/${enc(cid)}`, { title }); }
  addMember(cid, uid) { return this.request('PUT', `/v1/conversations/${enc(cid)}/members/${enc(uid)}`); }
  removeMember(cid, uid) { return this.request('DELETE', `/v1/conversations/${enc(cid)}/members/${enc(uid)}`); }
  /** A page of members in user-id order: {members, next_after} (null on the last page). */
  listMembers(cid, { after, limit = 100 } = {}) {
    return this.request('GET', `/v1/conversations/${enc(cid)}/members${query({ after, limit })}`);
  }

  /** A page of messages, ascending by seq: {messages, has_more}. */
  listMessages(cid, { before, after, limit = 50 } = {}) {
    return this.request('GET', `/v1/conversations/${enc(cid)}/messages${query({ before, after, limit })}`);
  }
  listEvents(cid, { after = 0, limit = 200 } = {}) {
    return this.request('GET', `/v1/conversations/${enc(cid)}/events${query({ after, limit })}`);
  }
  editMessage(cid, mid, text, version) {
    const headers = version != null ? { 'If-Match': `"${version}"` } : {};
    return this.request('PATCH', `/v1/conversations/${enc(cid)}/messages/${enc(mid)}`, { text }, { headers });
  }
  deleteMessage(cid, mid) { return this.request('DELETE', `/v1/conversations/${enc(cid)}/messages/${enc(mid)}`); }
  addReaction(cid, mid, emoji) {
    return this.request('PUT', `/v1/conversations/${enc(cid)}/messages/${enc(mid)}/reactions/${enc(emoji)}`);
  }
  removeReaction(cid, mid, emoji) {
    return this.request('DELETE', `/v1/conversations/${enc(cid)}/messages/${enc(mid)}/reactions/${enc(emoji)}`);
  }
  presence(cid) { return this.request('GET', `/v1/conversations/${enc(cid)}/presence`).then((r) => r.online || []); }

  /** Full-text search: {results:[{message, highlights}], next_page_token}. */
  search({ q, conversationId, senderId, after, before, hasAttachment, limit, pageToken } = {}) {
    return this.request('GET', '/v1/search' + query({
      q, conversation_id: conversationId, sender_id: senderId,
      after: after instanceof Date ? after.toISOString() : after,
      before: before instanceof Date ? before.toISOString() : before,
      has: hasAttachment ? 'attachment' : undefined, limit, page_token: pageToken,
    }));
  }

  /** Marks a conversation read up to seq. Only forward moves are sent. */
  markRead(cid, seq) {
    if (!(seq > (this._readSent.get(cid) || 0))) return Promise.resolve(false);
    this._readSent.set(cid, seq);
    return this.request('POST', `/v1/conversations/${enc(cid)}/read`, { seq }).then(() => true, (err) => {
      if (this._readSent.get(cid) === seq) this._readSent.delete(cid);
      throw err;
    });
  }

  /** Says "typing" in a conversation, at most once every 3 s. */
  typing(cid) {
    const now = Date.now();
    if (now - (this._typingSent.get(cid) || 0) < TYPING_INTERVAL_MS) return Promise.resolve(false);
    this._typingSent.set(cid, now);
    return this.request('POST', `/v1/conversations/${enc(cid)}/typing`).then(() => true, () => false);
  }

  // ------------------------------------------------------------ sending

  /**
   * Sends a message optimistically. Emits 'send-pending' at once, then
   * exactly one of 'send-confirmed' or 'send-failed'. Network failures, 429
   * and 503 are retried (same client_id, so never a duplicate). To retry a
   * failed send by hand, call send() again with the same clientId.
   */
  async send(cid, { text = '', attachments = [], replyTo = null, clientId = newClientId(), attachmentInfo = [] } = {}) {
    if (this._confirmed.has(clientId)) return null;
    const pending = { clientId, conversationId: cid, text, attachments, attachmentInfo, replyTo };
    this._pending.set(clientId, pending);
    this._emit('send-pending', pending);
    const body = { text, client_id: clientId };
    if (attachments.length) body.attachments = attachments;
    if (replyTo) body.reply_to = replyTo;
    for (let attempt = 0; ; attempt++) {
      try {
        const msg = await this.request('POST', `/v1/conversations/${enc(cid)}/messages`, body,
          { headers: { 'Idempotency-Key': clientId } });
        this._confirmSend(clientId, msg);
        return msg;
      } catch (err) {
        if (this._confirmed.has(clientId)) return null; // its event already confirmed it
        const offline = globalThis.navigator && globalThis.navigator.onLine === false;
        if (err.retryable && attempt < 4 && !offline) {
          const wait = err.retryAfter ? Math.min(err.retryAfter * 1000, 10000) : 300 + backoffDelay(attempt, { base: 500, cap: 4000 });
          await sleep(wait);
          continue;
        }
        this._pending.delete(clientId);
        this._emit('send-failed', { clientId, conversationId: cid, error: err, retryable: !!err.retryable });
        return null;
      }
    }
  }

  /** Whether a send with this client_id is in flight right now. */
  isSending(clientId) { return this._pending.has(clientId); }

  _confirmSend(clientId, message) {
    if (this._confirmed.has(clientId)) return;
    this._confirmed.add(clientId);
    if (this._confirmed.size > 2000) this._confirmed.delete(this._confirmed.values().next().value);
    const p = this._pending.get(clientId);
    this._pending.delete(clientId);
    this._emit('send-confirmed', { clientId, conversationId: (p && p.conversationId) || message.conversation_id, message });
  }

  // --------------------------------------------------------- attachments

  /**
   * Uploads one file: POST /v1/attachments, then the bytes with the request
   * it names (XMLHttpRequest, for upload progress). Resolves to the
   * attachment {id, name, content_type, size}. `onProgress(loaded, total)`.
   * `signal` aborts the upload.
   */
  async uploadAttachment(file, { onProgress, signal } = {}) {
    const contentType = file.type || 'application/octet-stream';
    const name = file.name || 'file';
    const slot = await this.request('POST', '/v1/attachments', { name, content_type: contentType, size: file.size }, { signal });
    await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(slot.method || 'PUT', slot.upload_url);
      const headers = slot.headers || {};
      const has = (n) => Object.keys(headers).some((k) => k.toLowerCase() === n);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (!has('content-type')) xhr.setRequestHeader('Content-Type', contentType);
      // A signed URL on our own origin may still want the bearer token; a
      // URL on object storage must not get it.
      const target = new URL(slot.upload_url, globalThis.location ? globalThis.location.href : this.baseUrl || undefined);
      const sameOrigin = globalThis.location ? target.origin === globalThis.location.origin : true;
      if (sameOrigin && !has('authorization')) xhr.setRequestHeader('Authorization', 'Bearer ' + this.token);
      if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
      xhr.addEventListener('load', () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else {
          let code = `http_${xhr.status}`, message = xhr.statusText;
          try { const b = JSON.parse(xhr.responseText); if (b && b.error) ({ code, message } = b.error); } catch { /* not JSON */ }
          reject(new ApiError(xhr.status, code, message));
        }
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'The upload failed.')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'The upload was cancelled.')));
      if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(file);
    });
    if (onProgress) onProgress(file.size, file.size);
    return { id: slot.id, name, content_type: contentType, size: file.size };
  }

  /**
   * Fetches an attachment (or its thumbnail) as a Blob. Attachment URLs need
   * the bearer token, which <img> cannot send, so the application turns the
   * Blob into an object URL. Rejects with ApiError 404 when it (or the
   * thumbnail, not made yet) does not exist.
   */
  async fetchAttachment(id, { thumbnail = false, signal } = {}) {
    const path = `/v1/attachments/${enc(id)}${thumbnail ? '/thumbnail' : ''}`;
    let res;
    try {
      res = await fetch(this._url(path), { headers: { Authorization: 'Bearer ' + this.token }, signal });
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw new ApiError(0, 'network', 'The attachment could not be loaded.');
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res.blob();
  }

  // ------------------------------------------------------------ realtime

  /** Starts the realtime stream (and keeps it up until stop()). */
  start() {
    if (this._running) return;
    this._running = true;
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this._onOnline);
      globalThis.addEventListener('offline', this._onOffline);
    }
    this._connect();
  }

  stop() {
    this._running = false;
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this._onOnline);
      globalThis.removeEventListener('offline', this._onOffline);
    }
    this._teardown();
    this._cancelUpgrade();
    this._setStatus('stopped');
  }

  /** Chooses the transport: 'auto' or one of TRANSPORTS. Reconnects with the
   * current cursor, so the switch loses and repeats nothing. */
  setTransport(pref) {
    this.preferred = pref;
    this.transport = pref === 'auto' ? 'websocket' : pref;
    this._openFailures = 0;
    this._cancelUpgrade();
    if (this._running) this.reconnectNow();
  }

  /** Drops the current connection and reconnects at once with the cursor. */
  reconnectNow() {
    if (!this._running) return;
    this._teardown();
    this._attempt = 0;
    this._connect();
  }

  /** Tells the client the application already has a conversation's events
   * up to seq (from REST), so the stream's copies of them are dropped. */
  setFloor(cid, seq) {
    if (typeof seq !== 'number') return;
    if (seq > (this._floors.get(cid) || 0)) this._floors.set(cid, seq);
  }

  floor(cid) { return this._floors.get(cid) || 0; }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  _setStatus(state) {
    if (this.state === state && this._lastStatusTransport === this.transport) return;
    this.state = state;
    this._lastStatusTransport = this.transport;
    this._emit('status', { state, transport: this.transport });
  }

  _unauthorized(error) {
    if (this._running) this.stop();
    this._emit('unauthorized', { error });
  }

  _teardown() {
    this._gen++;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    if (this._conn) {
      try { this._conn.close(); } catch { /* already closed */ }
      this._conn = null;
    }
  }

  _goOffline() {
    this._teardown();
    this._setStatus('offline');
    // The 'online' event reconnects; keep probing too, in case it never comes.
    this._scheduleReconnect({ keepState: true });
  }

  _connect() {
    const gen = ++this._gen;
    if (globalThis.navigator && globalThis.navigator.onLine === false) {
      this._setStatus('offline');
      this._scheduleReconnect({ keepState: true });
      return;
    }
    this._setStatus(this.state === 'connected' || this.state === 'reconnecting' || this.state === 'offline' ? 'reconnecting' : 'connecting');
    const withCursor = this.cursor;
    const ctx = { gen, withCursor, opened: false };
    if (this.transport === 'websocket') this._conn = this._withTicket(ctx, (c) => this._openWebSocket(c));
    else if (this.transport === 'sse') this._conn = this._withTicket(ctx, (c) => this._openEventSource(c));
    else this._conn = this._openLongPoll(ctx);
  }

  /** Called by a transport when its connection ended. `opened`: it had got
   * as far as an open connection. `immediate`: reconnect without waiting. */
  _connectionLost(ctx, { immediate = false, expired = false, unauthorized = null, opened = ctx.opened } = {}) {
    if (ctx.lost || ctx.gen !== this._gen || !this._running) return;
    ctx.lost = true;
    this._conn = null;
    if (unauthorized) { this._unauthorized(unauthorized); return; }
    if (expired) {
      this.cursor = null;
      this._emit('cursor-expired', {});
      immediate = true;
    }
    if (!opened && this.preferred === 'auto') {
      this._openFailures++;
      if (this._openFailures >= OPEN_FAILURES_BEFORE_FALLBACK) {
        const i = TRANSPORTS.indexOf(this.transport);
        if (i < TRANSPORTS.length - 1) {
          this.transport = TRANSPORTS[i + 1];
          this._openFailures = 0;
          this._upgradeAttempt = 0; // a fresh fallback probes soon again
          immediate = true;
        }
      }
    }
    if (globalThis.navigator && globalThis.navigator.onLine === false) { this._goOffline(); return; }
    this._setStatus('reconnecting');
    this._scheduleReconnect({ immediate });
  }

  _scheduleReconnect({ immediate = false, keepState = false } = {}) {
    clearTimeout(this._retryTimer);
    const delay = immediate ? Math.floor(Math.random() * 250) : backoffDelay(this._attempt, this.backoff);
    this._attempt++;
    const gen = this._gen;
    this._retryTimer = setTimeout(() => {
      if (gen !== this._gen || !this._running) return;
      if (keepState && globalThis.navigator && globalThis.navigator.onLine === false) {
        this._scheduleReconnect({ keepState: true });
        return;
      }
      this._connect();
    }, delay);
  }

  /** In auto mode on a fallback transport, probes WebSocket again after a
   * backoff delay; when a probe opens, the stream reconnects over WebSocket
   * with the cursor (nothing lost or repeated). A failed probe schedules
   * the next one, later, for as long as the page lives. */
  _scheduleUpgrade() {
    if (this.preferred !== 'auto' || this.transport === TRANSPORTS[0] || !this._running || this._upgrade) return;
    const cap = Math.min(this.upgradeProbe.max, this.upgradeProbe.base * 2 ** Math.min(this._upgradeAttempt, 16));
    const delay = Math.floor(cap / 2 + Math.random() * (cap / 2));
    this._upgradeAttempt++;
    const probe = { timer: null, ws: null, done: false };
    this._upgrade = probe;
    const again = () => {
      if (probe.done) return;
      probe.done = true;
      if (this._upgrade === probe) this._upgrade = null;
      if (this.state === 'connected') this._scheduleUpgrade();
    };
    probe.timer = setTimeout(() => {
      if (probe.done) return;
      this.ticket().then((ticket) => {
        if (probe.done) return;
        let ws;
        try {
          ws = new WebSocket(this._realtimeUrl('/v1/ws', { ticket }), WS_SUBPROTOCOL);
        } catch { again(); return; }
        probe.ws = ws;
        ws.addEventListener('open', () => {
          if (probe.done) { try { ws.close(1000); } catch { /* closing */ } return; }
          probe.done = true;
          this._upgrade = null;
          try { ws.close(1000); } catch { /* closing */ }
          if (!this._running || this.preferred !== 'auto') return;
          this.transport = TRANSPORTS[0];
          this._openFailures = 0;
          this._upgradeAttempt = 0;
          this.reconnectNow();
        });
        ws.addEventListener('close', again);
      }, again);
    }, delay);
  }

  _cancelUpgrade() {
    const probe = this._upgrade;
    if (!probe) return;
    probe.done = true;
    clearTimeout(probe.timer);
    if (probe.ws) try { probe.ws.close(1000); } catch { /* not open */ }
    this._upgrade = null;
  }

  /** Asks for a ticket, then opens the transport with it: browsers log
   * failed WebSocket URLs, so the URL carries a single-use ticket rather
   * than the token. A failure to get one counts as a failure to open. */
  _withTicket(ctx, open) {
    let inner = null, closed = false;
    this.ticket().then((ticket) => {
      if (closed || ctx.gen !== this._gen) return;
      ctx.ticket = ticket;
      inner = open(ctx);
    }, (err) => {
      if (closed || err.status === 401) return; // request() already reported a 401
      this._connectionLost(ctx, {});
    });
    return { close: () => { closed = true; if (inner) inner.close(); } };
  }

  _realtimeUrl(path, ctx, extra = {}) {
    const base = this.baseUrl || (globalThis.location ? globalThis.location.origin : '');
    const auth = ctx.ticket ? { ticket: ctx.ticket } : { access_token: this.token };
    const u = new URL(path + query({ ...auth, cursor: ctx.withCursor, ...extra }), base);
    if (path === '/v1/ws') u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.toString();
  }

  // WebSocket: frames may carry several JSON objects separated by "\n".
  _openWebSocket(ctx) {
    const ws = new WebSocket(this._realtimeUrl('/v1/ws', ctx), WS_SUBPROTOCOL);
    let heartbeat = null, lastRx = Date.now(), pingSeq = 0;
    ws.addEventListener('open', () => {
      ctx.opened = true;
      this._openFailures = 0;
      // Without a cursor the server waits briefly for an optional `hello`
      // (which could carry one); say it at once so `ready` comes sooner.
      if (!ctx.withCursor) try { ws.send(JSON.stringify({ type: 'hello' })); } catch { /* closing */ }
      heartbeat = setInterval(() => {
        if (Date.now() - lastRx > HEARTBEAT_INTERVAL_MS + HEARTBEAT_TIMEOUT_MS) {
          ws.close(4000, 'heartbeat timeout'); // the close event reconnects
          this._connectionLost(ctx, {});
          return;
        }
        try { ws.send(JSON.stringify({ type: 'ping', ref: 'hb' + (++pingSeq) })); } catch { /* closing */ }
      }, HEARTBEAT_INTERVAL_MS);
    });
    ws.addEventListener('message', (e) => {
      lastRx = Date.now();
      const objs = [];
      for (const line of String(e.data).split('\n')) {
        if (!line.trim()) continue;
        try { objs.push(JSON.parse(line)); } catch { /* ignore a malformed line */ }
      }
      if (objs.length) this._enqueueBatch(objs, ctx);
    });
    ws.addEventListener('close', (e) => {
      clearInterval(heartbeat);
      switch (e.code) {
        case 4401: this._connectionLost(ctx, { unauthorized: new ApiError(401, 'unauthorized', e.reason || 'unauthorized') }); break;
        case 4410: this._connectionLost(ctx, { expired: true }); break;
        case 1001: case 1013: this._connectionLost(ctx, { immediate: ctx.ready }); break;
        default: this._connectionLost(ctx, {});
      }
    });
    return { close: () => { clearInterval(heartbeat); try { ws.close(1000); } catch { /* not open */ } } };
  }

  // Server-Sent Events: one listener per event type (the server writes
  // `event: <type>`); reconnects are ours, with the cursor in the URL,
  // rather than EventSource's own, so that backoff and fallback apply.
  _openEventSource(ctx) {
    const es = new EventSource(this._realtimeUrl('/v1/events', ctx));
    let closed = false;
    const onData = (type) => (e) => {
      if (typeof e.data !== 'string') return;
      let obj;
      try { obj = JSON.parse(e.data); } catch { return; }
      if (obj && typeof obj === 'object' && !obj.type && type) obj.type = type;
      // The server ends the stream after `close` (going away) or a
      // too_slow error: both mean "resume at once with the cursor".
      if (obj.type === 'close' || (obj.type === 'error' && obj.error && obj.error.code === 'too_slow')) ctx.resumeNow = true;
      this._enqueueBatch([obj], ctx);
    };
    es.addEventListener('open', () => { ctx.opened = true; this._openFailures = 0; });
    for (const type of EVENT_TYPES) {
      if (type === 'error') continue;
      es.addEventListener(type, onData(type));
    }
    es.addEventListener('message', onData(null)); // events without a name
    es.addEventListener('close', onData('close'));
    es.addEventListener('error', (e) => {
      if (typeof e.data === 'string' && e.data) { onData('error')(e); return; } // an `event: error` from the server
      if (closed) return;
      closed = true;
      es.close();
      if (ctx.opened) { this._connectionLost(ctx, { immediate: !!ctx.resumeNow }); return; }
      // EventSource hides the HTTP status; ask for it once to tell an
      // expired cursor or a bad token from a network failure.
      this._probeStatus('/v1/events', ctx).then((status) => {
        if (status === 410) this._connectionLost(ctx, { expired: true });
        else if (status === 401) this._connectionLost(ctx, { unauthorized: new ApiError(401, 'unauthorized', 'unauthorized') });
        else this._connectionLost(ctx, {});
      });
    });
    return { close: () => { closed = true; es.close(); } };
  }

  async _probeStatus(path, ctx) {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), 5000);
    try {
      const res = await fetch(this._url(path + query({ cursor: ctx.withCursor })), {
        headers: { Authorization: 'Bearer ' + this.token, Accept: 'text/event-stream' }, signal: ac.signal,
      });
      return res.status;
    } catch {
      return 0;
    } finally {
      clearTimeout(t);
      ac.abort();
    }
  }

  // Long-polling: the first request of a connection asks with wait=0 so the
  // status turns "connected" at once; later ones hold up to 25 s.
  _openLongPoll(ctx) {
    const ac = new AbortController();
    const loop = async () => {
      let wait = 0;
      while (ctx.gen === this._gen && !ac.signal.aborted) {
        const timeout = setTimeout(() => ac.abort(), (wait + 15) * 1000);
        let answer;
        try {
          answer = await this.request('GET', '/v1/poll' + query({ cursor: this.cursor, wait }), undefined, { signal: ac.signal });
        } catch (err) {
          clearTimeout(timeout);
          if (ctx.gen !== this._gen) return;
          if (err.status === 410) this._connectionLost(ctx, { expired: true });
          else if (err.status === 401) return; // request() already reported it
          else {
            // A poll that reached the server before counts as opened.
            this._connectionLost(ctx, {});
          }
          return;
        }
        clearTimeout(timeout);
        if (ctx.gen !== this._gen) return;
        if (!ctx.opened) {
          ctx.opened = true;
          this._openFailures = 0;
          // The first answer plays the part of `ready`.
          await this._enqueueBatch([{ type: 'ready', user_id: this.userId, cursor: null, _poll: true }], ctx);
        }
        await this._enqueueBatch(answer.events || [], ctx);
        if (answer.cursor && ctx.gen === this._gen) this.cursor = answer.cursor;
        wait = POLL_WAIT_SECONDS;
      }
    };
    loop();
    return { close: () => ac.abort() };
  }

  // ----------------------------------------------------- event pipeline

  _enqueueBatch(objs, ctx) {
    this._queue = this._queue.then(() => this._processBatch(objs, ctx)).catch((err) => {
      console.error('parley: event processing failed', err);
    });
    return this._queue;
  }

  async _processBatch(objs, ctx) {
    for (const obj of objs) {
      if (!obj || typeof obj !== 'object') continue;
      switch (obj.type) {
        case 'ready':
          if (ctx.gen !== this._gen) break;
          ctx.ready = true;
          if (obj.user_id) this.userId = obj.user_id;
          if (obj.cursor) this.cursor = obj.cursor;
          this._attempt = 0;
          if (!ctx.withCursor && this.onResync) {
            try { await this.onResync(); } catch (err) { console.error('parley: resync failed', err); }
          }
          if (ctx.gen === this._gen) {
            this._setStatus('connected');
            this._scheduleUpgrade();
          }
          break;
        case 'pong':
        case 'ack':
        case 'close':
          break;
        case 'error':
          if (obj.error && obj.error.code === 'cursor_expired') {
            // On WebSocket a close 4410 follows; on SSE the stream ends.
            this.cursor = null;
          } else if (obj.error && obj.error.code === 'unauthorized') {
            this._unauthorized(new ApiError(401, 'unauthorized', obj.error.message));
          }
          break;
        default:
          await this._deliver(obj, { fromStream: true });
      }
    }
  }

  async _deliver(ev, { fromStream }) {
    const cid = ev.conversation_id;
    if (typeof ev.seq !== 'number' || !cid) { // ephemeral: typing, presence
      this._emit('event', ev);
      return;
    }
    const floor = this._floors.get(cid);
    if (floor !== undefined && ev.seq <= floor) {
      if (fromStream && ev.cursor) this.cursor = ev.cursor;
      return; // already delivered (or loaded over REST)
    }
    if (floor !== undefined && ev.seq > floor + 1 && fromStream) await this._repairGap(cid, floor, ev.seq);
    if ((this._floors.get(cid) || 0) >= ev.seq) { if (ev.cursor) this.cursor = ev.cursor; return; }
    this._floors.set(cid, ev.seq);
    if (ev.type === 'message.created' && ev.message && ev.message.client_id &&
        ev.message.sender_id === this.userId && this._pending.has(ev.message.client_id)) {
      this._confirmSend(ev.message.client_id, ev.message);
    }
    this._emit('event', ev);
    if (ev.type === 'member.removed' && ev.user_id === this.userId) this._floors.delete(cid);
    if (fromStream && ev.cursor) this.cursor = ev.cursor;
  }

  /** Fetches the events between floor and seq from the durable log. */
  async _repairGap(cid, floor, seq) {
    let after = floor;
    try {
      while (after < seq - 1) {
        const page = await this.listEvents(cid, { after, limit: Math.min(200, seq - 1 - after) });
        const events = (page.events || []).filter((e) => e.seq > after && e.seq < seq);
        for (const e of events) await this._deliver(e, { fromStream: false });
        if (!events.length || !page.has_more) break;
        after = events[events.length - 1].seq;
      }
    } catch (err) {
      console.warn('parley: could not repair a gap in', cid, err);
    }
  }
}
