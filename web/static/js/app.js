// Parley web client: start-up, sign-in, and the glue between the protocol
// client (parley-client.js) and the UI modules under ui/.
import { ParleyClient, devSignIn, newClientId, TRANSPORT_NAMES, TRANSPORTS } from './parley-client.js';
import { Outbox } from './outbox.js';
import { trapAllDialogs } from './ui/dialogs.js';
import { $, h, avatar, errorText, announce } from './ui/dom.js';
import { Conversations, membersText } from './ui/conversations.js';
import { MessageView } from './ui/messages.js';
import { Composer } from './ui/composer.js';
import { Search } from './ui/search.js';
import { Media } from './ui/media.js';
import { setupNotify } from './ui/notify.js';

const TOKEN_KEY = 'parley.token';
const TRANSPORT_KEY = 'parley.transport';
const TYPING_SHOWN_MS = 6000;

// ------------------------------------------------------------------ sign-in

function showSignIn(message = '') {
  $('#chat').hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message;
  $('#signin-user').focus();
}

function bindSignIn() {
  $('#dev-signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const err = $('#signin-error');
    err.textContent = '';
    const userId = $('#signin-user').value.trim();
    const button = e.submitter || $('#dev-signin-form button');
    button.disabled = true;
    try {
      const { token } = await devSignIn(userId, $('#signin-name').value.trim());
      localStorage.setItem(TOKEN_KEY, token);
      await startChat(token);
    } catch (ex) {
      err.textContent = ex.status === 404 || ex.status === 403
        ? 'Development sign-in is off on this server. Use an access token instead.'
        : errorText(ex);
    } finally {
      button.disabled = false;
    }
  });
  $('#token-signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('#signin-token').value.trim();
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    await startChat(token);
  });
}

function signOut(message = '') {
  if (app) app.client.stop();
  localStorage.removeItem(TOKEN_KEY);
  if (message) sessionStorage.setItem('parley.signout-message', message);
  // A fresh page drops every bit of the old user's state.
  location.assign('/');
}

// --------------------------------------------------------------------- app

let app = null;

class App {
  constructor(client, me) {
    this.client = client;
    this.me = me;
    this.currentCid = null;
    this.online = new Set();    // user ids seen online
    this.reads = new Map();     // conversation id → Map(user id → read seq)
    this.typing = new Map();    // conversation id → Map(user id → shown until)
    this.pending = new Map();   // client_id → optimistic send (mirrors the outbox)
    this.outbox = new Outbox(me.id);
    this.lastMessageAt = new Map(); // "cid user" → when their last message arrived
    this.names = new Map();     // user id → display name (GET /v1/users/{uid}, user.updated)
    this.namesAsked = new Set(); // user ids whose profile was asked for
    this.names.set(me.id, me.name || me.id);
    this.resynced = false;
    this.media = new Media(this);
    this.convs = new Conversations(this);
    this.messages = new MessageView(this);
    this.composer = new Composer(this);
    this.search = new Search(this);
    this._bindClient();
    this._bindChrome();
    trapAllDialogs();
    showMe(me); // again: the avatar with the name's initials
    // What an earlier page left unsent; flushOutbox waits for it.
    this.outboxLoaded = this.loadOutbox();
  }

  // ----- state loading

  /** Loads everything over REST; called by the client whenever its stream
   * starts without a cursor (first connect, or after cursor_expired). */
  async resync() {
    // user.updated is not replayed: after a reconnect without a cursor, ask
    // again for the names already shown.
    if (this.resynced) {
      for (const uid of this.names.keys()) {
        if (uid !== this.me.id) this.client.getUser(uid).then((p) => this.setName(p.id, p.name), () => {});
      }
    }
    this.resynced = true;
    await this.convs.load();
    const cid = this.currentCid || this._cidFromPath();
    if (cid && this.convs.get(cid)) {
      if (cid !== this.currentCid) await this.openConversation(cid, { push: false });
      else { await this.messages.reload(); this._loadPresence(cid); }
    } else if (cid) {
      this.closeConversation({ notice: 'That conversation does not exist, or you are not a member.' });
    }
  }

  _cidFromPath() {
    const m = location.pathname.match(/^\/c\/([^/]+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  // ----- people

  /** The display name of uid: known, or the id while its profile loads
   * (asked for once per page; user.updated keeps it current). */
  name(uid) {
    if (!uid) return '';
    const known = this.names.get(uid);
    if (known) return known;
    if (!this.namesAsked.has(uid)) {
      this.namesAsked.add(uid);
      this.client.getUser(uid).then((p) => this.setName(p.id, p.name), () => { /* not shared: keep the id */ });
    }
    return uid;
  }

  setName(uid, name) {
    if (!uid || !name || this.names.get(uid) === name) return;
    this.names.set(uid, name);
    if (uid === this.me.id) {
      this.me.name = name;
      showMe(this.me);
    }
    // Profiles arrive in bursts: repaint once for all of them.
    if (this._namesTimer) return;
    this._namesTimer = setTimeout(() => {
      this._namesTimer = null;
      this.convs.render();
      this.renderHeader();
      this.messages.refreshNames();
      if (this.composer.reply) $('#reply-sender').textContent = this.name(this.composer.reply.sender_id);
      if (!this.search.panel.hidden) this.search.syncConversations();
    }, 30);
  }

  // ----- conversations

  async openConversation(cid, { aroundSeq = null, targetId = null, push = true, focusComposer = false } = {}) {
    const c = this.convs.get(cid) || await this.convs.ensure(cid);
    if (!c) { this.toast('That conversation is not available.'); return; }
    const switching = cid !== this.currentCid;
    if (switching) {
      this.currentCid = cid;
      this.composer.setConversation(cid);
    }
    if (push && location.pathname !== `/c/${encodeURIComponent(cid)}`) history.pushState({ cid }, '', `/c/${encodeURIComponent(cid)}`);
    document.body.classList.add('conv-open');
    $('#empty-state').hidden = true;
    $('#conv-view').hidden = false;
    c.unread = 0;
    this.renderHeader();
    this.convs.render();
    if (switching || aroundSeq != null) await this.messages.open(cid, { aroundSeq, targetId });
    else if (targetId) this.messages.scrollToMessage(targetId);
    if (switching) this._loadPresence(cid);
    if (focusComposer) this.composer.focus();
  }

  closeConversation({ notice = '' } = {}) {
    this.currentCid = null;
    this.messages.close();
    this.composer.setConversation(null);
    document.body.classList.remove('conv-open');
    $('#conv-view').hidden = true;
    $('#empty-state').hidden = false;
    if (location.pathname !== '/') history.pushState({}, '', '/');
    this.convs.render();
    if (notice) this.toast(notice);
  }

  onConversationsChanged() {
    let unread = 0;
    for (const c of this.convs.map.values()) if (c.id !== this.currentCid) unread += c.unread || 0;
    const c = this.convs.get(this.currentCid);
    const base = c ? `${this.convs.title(c)} · Parley` : 'Parley';
    document.title = unread ? `(${unread}) ${base}` : base;
    if (this.currentCid) this.renderHeader();
    if (!this.search.panel.hidden) this.search.syncConversations();
  }

  renderHeader() {
    const c = this.convs.get(this.currentCid);
    if (!c) return;
    const title = this.convs.title(c);
    $('#conv-title').textContent = title;
    const others = (c.members || []).filter((m) => m !== this.me.id);
    const onlineOthers = others.filter((m) => this.online.has(m));
    const sub = $('#conv-subtitle');
    if (c.kind === 'direct') {
      sub.replaceChildren(h('span', { class: 'presence-dot inline' + (onlineOthers.length ? ' online' : ''), 'aria-hidden': 'true' }),
        onlineOthers.length ? 'Online' : 'Offline');
    } else {
      sub.replaceChildren(membersText(c), onlineOthers.length ? ` · ${onlineOthers.length} online` : '');
    }
    $('#rename-btn').hidden = c.kind === 'direct';
    if (this.convs.membersDialog.open) this.convs.renderMembers();
  }

  async _loadPresence(cid) {
    try {
      const online = await this.client.presence(cid);
      const c = this.convs.get(cid);
      if (c) for (const m of c.members || []) this.online.delete(m);
      for (const u of online) this.online.add(u);
      this.convs.render();
    } catch { /* presence is optional */ }
  }

  // ----- reading

  /** The person is looking at the newest messages of cid right now. */
  isReading(cid) {
    return cid === this.currentCid && document.visibilityState === 'visible' && this.messages.atLiveEnd && this.messages.isNearBottom();
  }

  markRead(cid) {
    const c = this.convs.get(cid);
    if (!c || !c.last_seq) return;
    const hadUnread = c.unread;
    c.unread = 0;
    c.read_seq = Math.max(c.read_seq || 0, c.last_seq);
    if (hadUnread) this.convs.render();
    this.client.markRead(cid, c.last_seq).catch(() => {});
  }

  // ----- sending

  /** Sends a message: first into the durable outbox, then to the server. */
  async send(cid, opts) {
    const clientId = newClientId();
    const rec = {
      clientId, conversationId: cid, text: opts.text || '', attachments: opts.attachments || [],
      attachmentInfo: (opts.attachmentInfo || []).map(({ id, name, size, content_type: ct }) => ({ id, name, size, content_type: ct })),
      replyTo: opts.replyTo || null, createdAt: Date.now(), status: 'sending',
    };
    try { await this.outbox.put(rec); } catch (err) { console.warn('parley: outbox unavailable', err); }
    this._post(rec);
  }

  _post(rec) {
    rec.status = 'sending';
    this.client.send(rec.conversationId, { ...rec, clientId: rec.clientId });
  }

  /** Loads what an earlier page left in the outbox and shows it. */
  async loadOutbox() {
    let recs = [];
    try { recs = await this.outbox.all(); } catch (err) { console.warn('parley: outbox unavailable', err); }
    for (const r of recs) {
      if (this.pending.has(r.clientId)) continue;
      const p = { ...r, status: r.status === 'failed' ? 'failed' : 'queued' };
      this.pending.set(p.clientId, p);
      this.messages.showPending(p);
    }
  }

  /** Sends again, oldest first and one at a time (to keep their order),
   * what waits in the outbox: on every (re)connect. */
  async flushOutbox() {
    if (this._flushing) { this._flushAgain = true; return; }
    this._flushing = true;
    try {
      await this.outboxLoaded;
      do {
        this._flushAgain = false;
        const queued = [...this.pending.values()].filter((p) => p.status === 'queued' && !this.client.isSending(p.clientId))
          .sort((a, b) => a.createdAt - b.createdAt);
        for (const p of queued) {
          if (this.client.state !== 'connected') return;
          if (!this.pending.has(p.clientId)) continue; // discarded meanwhile
          p.status = 'sending';
          this.messages.showPending(p);
          await this.client.send(p.conversationId, { ...p, clientId: p.clientId });
        }
      } while (this._flushAgain);
    } finally {
      this._flushing = false;
    }
  }

  retrySend(clientId) {
    const p = this.pending.get(clientId);
    if (!p || this.client.isSending(clientId)) return;
    this._post(p);
  }

  discardSend(clientId) {
    this.pending.delete(clientId);
    this.messages.removePending(clientId);
    this.outbox.delete(clientId).catch(() => {});
    announce('Message discarded');
  }

  // ----- client events

  _bindClient() {
    const c = this.client;
    c.onResync = () => this.resync();
    c.addEventListener('status', (e) => {
      this.renderStatus(e.detail);
      if (e.detail.state === 'connected') this.flushOutbox();
    });
    c.addEventListener('unauthorized', () => signOut('Your session has ended. Please sign in again.'));
    c.addEventListener('cursor-expired', () => announce('Reloading conversations'));
    c.addEventListener('send-pending', (e) => {
      const old = this.pending.get(e.detail.clientId);
      const p = { createdAt: Date.now(), ...old, ...e.detail, status: 'sending', error: null };
      this.pending.set(p.clientId, p);
      this.messages.showPending(p);
    });
    c.addEventListener('send-confirmed', (e) => {
      const { clientId, conversationId, message } = e.detail;
      this.pending.delete(clientId);
      this.outbox.delete(clientId).catch(() => {});
      if (conversationId === this.messages.cid) {
        if (this.messages.atLiveEnd) this.messages._upsert(message);
        else this.messages.removePending(clientId);
        this.messages.updateSeen();
      }
      const conv = this.convs.get(conversationId);
      if (conv) {
        conv.last_seq = Math.max(conv.last_seq || 0, message.seq);
        this.convs.touch(conversationId);
        if (!conv.last_message || (conv.last_message.seq || 0) <= message.seq) conv.last_message = message;
        this.convs.render();
      }
    });
    c.addEventListener('send-failed', (e) => {
      const p = this.pending.get(e.detail.clientId);
      if (!p) return;
      // Offline or the server away: it waits in the outbox for the next
      // connection. Refused: it waits for Retry or Discard.
      p.status = e.detail.retryable ? 'queued' : 'failed';
      p.error = e.detail.error;
      this.outbox.update(p.clientId, { status: p.status }).catch(() => {});
      this.messages.showPending(p);
      this.renderStatus({ state: this.client.state, transport: this.client.transport });
      announce(p.status === 'queued' ? 'Message will be sent when the connection is back' : 'Message not sent');
      if (p.status === 'queued' && this.client.state === 'connected') {
        // The stream is up but the send failed: try again in a while.
        p.tries = (p.tries || 0) + 1;
        setTimeout(() => this.flushOutbox(), Math.min(60000, 5000 * 2 ** (p.tries - 1)));
      }
    });
    c.addEventListener('event', (e) => this._onEvent(e.detail));
  }

  _onEvent(ev) {
    switch (ev.type) {
      case 'user.updated':
        if (ev.user) this.setName(ev.user.id, ev.user.name);
        return;
      case 'presence':
        if (ev.online) this.online.add(ev.user_id); else this.online.delete(ev.user_id);
        this.convs.render();
        return;
      case 'typing': {
        if (ev.user_id === this.me.id) return;
        // A typing event can overtake the message it was typed for.
        if (Date.now() - (this.lastMessageAt.get(`${ev.conversation_id} ${ev.user_id}`) || 0) < 1500) return;
        if (!this.typing.has(ev.conversation_id)) this.typing.set(ev.conversation_id, new Map());
        this.typing.get(ev.conversation_id).set(ev.user_id, Date.now() + TYPING_SHOWN_MS);
        this.messages.handleEvent(ev);
        return;
      }
      case 'message.created':
        this.lastMessageAt.set(`${ev.conversation_id} ${ev.message.sender_id}`, Date.now());
        if (this.typing.has(ev.conversation_id)) this.typing.get(ev.conversation_id).delete(ev.message.sender_id);
        break;
      case 'read.updated': {
        if (!this.reads.has(ev.conversation_id)) this.reads.set(ev.conversation_id, new Map());
        const r = this.reads.get(ev.conversation_id);
        r.set(ev.user_id, Math.max(r.get(ev.user_id) || 0, readPosition(ev)));
        break;
      }
      default:
    }
    this.convs.handleEvent(ev);
    this.messages.handleEvent(ev);
  }

  renderStatus({ state, transport }) {
    const el = $('#connection');
    const name = TRANSPORT_NAMES[transport] || transport;
    const words = { connecting: 'Connecting', connected: 'Connected', reconnecting: 'Reconnecting' };
    // The text names the state and the transport (API.md landmarks); a
    // phone shows only the coloured dot, the text stays for screen readers.
    el.replaceChildren(h('span', { class: 'conn-text' }, words[state] ? `${words[state]} · ${name}` : 'Offline'));
    el.dataset.state = state;
    el.title = state === 'connected' ? `Live updates over ${name}` : '';
    // Shown where the person types, too: what happens to what they send.
    const cs = $('#composer-status');
    const waiting = [...this.pending.values()].filter((p) => p.status === 'queued').length;
    const later = waiting ? ` ${waiting === 1 ? 'One message waits' : `${waiting} messages wait`} to be sent.` : ' What you send goes out when it is back.';
    const texts = {
      offline: 'You are offline.' + later,
      reconnecting: 'Reconnecting…' + later,
      connecting: 'Connecting…',
    };
    cs.textContent = texts[state] || '';
    cs.dataset.state = state;
    cs.hidden = !texts[state];
  }

  // ----- page chrome

  _bindChrome() {
    const sel = $('#transport-select');
    sel.value = this.client.preferred;
    sel.addEventListener('change', () => {
      localStorage.setItem(TRANSPORT_KEY, sel.value);
      this.client.setTransport(sel.value);
    });
    $('#signout-btn').addEventListener('click', () => signOut());
    $('#name-input').value = this.me.name || '';
    $('#name-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = $('#name-input'), err = $('#name-error');
      const name = input.value.trim();
      err.textContent = '';
      if (!name || [...name].length > 64) { err.textContent = 'A name has 1 to 64 characters.'; input.focus(); return; }
      try {
        const p = await this.client.setName(name);
        this.setName(p.id, p.name);
        input.value = p.name;
        announce('Name saved');
      } catch (ex) {
        err.textContent = errorText(ex);
      }
    });
    $('#back-btn').addEventListener('click', () => this.closeConversation());
    window.addEventListener('popstate', () => {
      const cid = this._cidFromPath();
      if (cid) this.openConversation(cid, { push: false });
      else this.closeConversation();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.currentCid && this.isReading(this.currentCid)) this.markRead(this.currentCid);
    });
    // Close the settings menu on outside click or Escape.
    const settings = $('#settings');
    document.addEventListener('click', (e) => { if (settings.open && !settings.contains(e.target)) settings.open = false; });
    settings.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && settings.open) { settings.open = false; settings.querySelector('summary').focus(); }
    });
    // "/" focuses search, as in many chat apps.
    document.addEventListener('keydown', (e) => {
      if (e.key === '/' && !e.target.closest('input, textarea, select, [contenteditable]')) {
        e.preventDefault();
        $('#search-input').focus();
      }
    });
  }

  toast(text) {
    const t = h('div', { class: 'toast', role: 'alert' }, text);
    document.body.append(t);
    setTimeout(() => t.remove(), 5000);
  }
}

/** The reader's new position in a read.updated event: `read_seq` (the
 * event's own `seq` is its place in the log); older servers sent only `seq`. */
export function readPosition(ev) {
  return typeof ev.read_seq === 'number' ? ev.read_seq : ev.seq;
}

// ----------------------------------------------------------------- start-up

function showMe(me) {
  const av = $('#me-avatar');
  if (av) av.replaceWith(Object.assign(avatar(me.id, 'me-avatar', me.name), { id: 'me-avatar' }));
  $('#me-name').textContent = me.name || me.id;
  $('#me-id').textContent = me.name && me.name !== me.id ? `(${me.id})` : '';
  $('#me-chip').textContent = me.name || me.id;
}

async function startChat(token) {
  const pref = localStorage.getItem(TRANSPORT_KEY);
  const client = new ParleyClient({ token, transport: pref === 'auto' || TRANSPORTS.includes(pref) ? pref : 'auto' });
  let me;
  try {
    me = await client.me();
  } catch (err) {
    if (err.status === 401) { localStorage.removeItem(TOKEN_KEY); showSignIn('That token was refused. Please sign in again.'); }
    else showSignIn(`Cannot reach the server: ${errorText(err)}`);
    return;
  }
  $('#signin').hidden = true;
  $('#chat').hidden = false;
  showMe(me);
  $('#me-avatar').replaceWith(Object.assign(avatar(me.id, 'me-avatar'), { id: 'me-avatar' }));
  app = new App(client, me);
  setupNotify(client, me);
  client.start();
  // If the stream is slow to come up, show what REST has meanwhile; the
  // stream's `ready` loads again and fills any gap.
  setTimeout(() => { if (!app.resynced) app.resync().catch(() => {}); }, 3000);
  if (!app._cidFromPath()) $('#new-conv-btn').focus();
}

bindSignIn();
const saved = localStorage.getItem(TOKEN_KEY);
const goodbye = sessionStorage.getItem('parley.signout-message');
sessionStorage.removeItem('parley.signout-message');
if (saved) startChat(saved);
else showSignIn(goodbye || '');
