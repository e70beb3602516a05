// The message list of the open conversation: history, infinite scroll in
// both directions, live updates, optimistic sends, edit, delete, reactions,
// replies and "seen by"; day separators, messages grouped by sender, a
// start-of-conversation header, and a list that stays at the bottom while
// the reader is there (through resizes and image loads).
import { h, $, avatar, formatClock, formatDay, formatSize, errorText, announce } from './dom.js';
import { renderMarkdown, plainText } from './markdown.js';
import { confirmDialog } from './dialogs.js';

const PAGE = 50;
const AROUND = 25;
/** Consecutive messages of one sender closer than this share one header. */
const GROUP_MS = 5 * 60 * 1000;
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
/** The picker's full set (an emoji font is in the CSS font stack, with
 * the system's as fallback). */
export const MORE_REACTIONS = [
  '👍', '👎', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👏', '🔥', '✅', '❌', '👀', '🚀', '💯', '🤔',
  '😀', '😅', '😍', '😎', '🙌', '💪', '🤝', '👌', '⭐', '💡', '⚠️', '❓', '☕', '🍕', '🐛', '🎯',
];

export class MessageView {
  constructor(app) {
    this.app = app;
    this.list = $('#messages');
    this.jumpBtn = $('#jump-latest');
    this.typingEl = $('#typing');
    this._reset(null);
    this.stuck = true; // the reader is at the newest message: keep them there
    this.list.addEventListener('scroll', () => this._onScroll(), { passive: true });
    this.list.addEventListener('click', (e) => this._onClick(e));
    this.list.addEventListener('keydown', (e) => this._onKeyDown(e));
    this.jumpBtn.addEventListener('click', () => this.open(this.cid));
    this._bindActions();
    // Whatever changes a height (a resize of the window or the composer, an
    // image or a "Seen by" line appearing) keeps a reader at the bottom there.
    this._resizes = new ResizeObserver(() => { if (this.stuck && this.cid) this.scrollToBottom(); });
    this._resizes.observe(this.list);
    this.list.addEventListener('load', () => { if (this.stuck) this.scrollToBottom(); }, true); // images
    setInterval(() => this.renderTyping(), 1000);
  }

  // ------------------------------------------------------ message actions

  /** One message's action toolbar is open at a time: the one under the
   * mouse, or holding keyboard focus, or (on a touch screen) the one last
   * tapped, until a tap elsewhere. */
  _bindActions() {
    this.active = null;
    const hover = window.matchMedia('(hover: hover)');
    this._arrowedAt = 0; // when the arrow keys last moved focus (_onKeyDown)
    this.list.addEventListener('mouseover', (e) => {
      if (!hover.matches) return;
      const li = e.target.closest('li.msg');
      // Arrow keys scroll the list, and the browser then reports the still
      // mouse as over another message: for a moment after an arrow key
      // the message holding focus keeps its toolbar.
      const focused = this.active && this.active.contains(document.activeElement);
      if (focused && performance.now() - this._arrowedAt < 1000) return;
      // The mouse wins, unless the open one holds a reaction picker in use.
      const busy = focused && this.active.querySelector('.picker');
      if (li && !busy) this.setActive(li);
    });
    this.list.addEventListener('mouseleave', () => {
      if (hover.matches && this.active && !this.active.contains(document.activeElement)) this.setActive(null);
    });
    this.list.addEventListener('focusin', (e) => {
      const li = e.target.closest('li.msg');
      if (li) this.setActive(li);
    });
    this.list.addEventListener('focusout', (e) => {
      if (!this.list.contains(e.relatedTarget) && !(hover.matches && this.list.matches(':hover'))) this.setActive(null);
    });
    // A tap toggles: measured against what was open before the tap (the
    // tap's own focus has opened it already).
    this.list.addEventListener('pointerdown', () => { this._beforeTap = this.active; });
    this.list.addEventListener('click', (e) => {
      if (hover.matches || e.target.closest('button, a, input, textarea, .picker')) return;
      const li = e.target.closest('li.msg');
      this.setActive(li && li !== this._beforeTap ? li : null);
      this._beforeTap = this.active;
    });
    document.addEventListener('pointerdown', (e) => {
      if (this.active && !this.list.contains(e.target) && !e.target.closest('dialog')) this.setActive(null);
    });
  }

  setActive(li) {
    if (li && (li.classList.contains('editing') || li.classList.contains('pending') || li.classList.contains('deleted'))) li = null;
    if (this.active === li) return;
    if (this.active) {
      this.active.classList.remove('actions-open');
      const picker = this.active.querySelector('.picker');
      if (picker && !picker.contains(document.activeElement)) picker.remove();
    }
    this.active = li;
    if (li) li.classList.add('actions-open');
  }

  _reset(cid) {
    this.cid = cid;
    this.msgs = new Map();   // id → message
    this.els = new Map();    // id → <li>
    this.pendingEls = new Map(); // client_id → <li>
    this.clientIds = new Set();  // client_ids of the loaded messages (a retried send is shown once)
    this.hasMoreBefore = false;
    this.hasMoreAfter = false;
    this.loadingOlder = false;
    this.loadingNewer = false;
    this.clientIds = this.clientIds || new Set();
    this.editing = null;
    this.active = null;
    this.stuck = true;
    this.gen = (this.gen || 0) + 1;
    this.list.replaceChildren();
    this.jumpBtn.hidden = true;
    if (this._resizes) {
      this._resizes.disconnect();
      this._resizes.observe(this.list);
    }
  }

  get atLiveEnd() { return !this.hasMoreAfter; }

  /** Opens a conversation at its newest messages, or around `aroundSeq`
   * (a search result), highlighting `targetId`. */
  async open(cid, { aroundSeq = null, targetId = null } = {}) {
    this._reset(cid);
    const gen = this.gen;
    this.list.setAttribute('aria-busy', 'true');
    try {
      if (aroundSeq != null) {
        const [older, newer] = await Promise.all([
          this.app.client.listMessages(cid, { before: aroundSeq + 1, limit: AROUND }),
          this.app.client.listMessages(cid, { after: aroundSeq, limit: AROUND }),
        ]);
        if (gen !== this.gen) return;
        this.hasMoreBefore = older.has_more;
        this.hasMoreAfter = newer.has_more;
        this._insertMany([...older.messages, ...newer.messages]);
        this._renderPending();
        const target = (targetId && this.els.get(targetId)) || this.list.querySelector(`li[data-seq="${aroundSeq}"]`);
        if (target) this._highlight(target);
        else this.scrollToBottom();
        this.jumpBtn.hidden = this.atLiveEnd;
      } else {
        const page = await this.app.client.listMessages(cid, { limit: PAGE });
        if (gen !== this.gen) return;
        this.hasMoreBefore = page.has_more;
        this._insertMany(page.messages);
        this._renderPending();
        this.scrollToBottom();
        await this._fillViewport(gen);
      }
    } catch (err) {
      if (gen !== this.gen) return;
      this.list.replaceChildren(h('li', { class: 'notice error' }, `Could not load messages: ${errorText(err)}`));
      return;
    } finally {
      if (gen === this.gen) this.list.removeAttribute('aria-busy');
    }
    this.updateSeen();
    this.renderTyping();
    this._maybeMarkRead();
  }

  /** Reloads after a resync, keeping the reader where they were when they
   * are reading history. */
  async reload() {
    if (!this.cid) return;
    if (this.atLiveEnd) await this.open(this.cid);
  }

  close() { this._reset(null); this.typingEl.textContent = ''; }

  // ------------------------------------------------------------- loading

  async _fillViewport(gen) {
    // Short first pages leave nothing to scroll; load more until there is.
    for (let i = 0; i < 5 && gen === this.gen && this.hasMoreBefore && this.list.scrollHeight <= this.list.clientHeight + 50; i++) {
      await this.loadOlder();
    }
  }

  /** The first message whose bottom is below the list's top edge. */
  _firstOnScreen() {
    const top = this.list.getBoundingClientRect().top;
    for (const li of this.list.querySelectorAll(':scope > li.msg')) {
      if (li.getBoundingClientRect().bottom > top) return li;
    }
    return null;
  }

  _firstSeq() {
    const li = this.list.querySelector('li[data-seq]');
    return li ? Number(li.dataset.seq) : null;
  }

  _lastSeq() {
    const all = this.list.querySelectorAll('li[data-seq]');
    return all.length ? Number(all[all.length - 1].dataset.seq) : 0;
  }

  async loadOlder() {
    if (this.loadingOlder || !this.hasMoreBefore || !this.cid) return;
    const first = this._firstSeq();
    if (first == null || first <= 1) { this.hasMoreBefore = false; return; }
    this.loadingOlder = true;
    const gen = this.gen;
    // The spinner takes no room in the list (.loading in app.css): coming
    // and going, it moves nothing the reader sees.
    const spinner = h('li', { class: 'notice muted loading' }, 'Loading earlier messages…');
    this.list.prepend(spinner);
    try {
      const page = await this.app.client.listMessages(this.cid, { before: first, limit: PAGE });
      if (gen !== this.gen) return;
      // Keep what the reader sees in place: the first message on screen
      // stays where it is. (Restoring by the list's change of height was
      // off by the sender line that message loses when the older page
      // groups it with the messages now above it.)
      const beforeHeight = this.list.scrollHeight;
      const beforeTop = this.list.scrollTop;
      const anchor = this._firstOnScreen();
      const anchorY = anchor && anchor.getBoundingClientRect().top;
      spinner.remove();
      this.hasMoreBefore = page.has_more;
      this._insertMany(page.messages);
      if (anchor && anchor.isConnected) this.list.scrollTop += anchor.getBoundingClientRect().top - anchorY;
      else this.list.scrollTop = beforeTop + (this.list.scrollHeight - beforeHeight);
      this.updateSeen();
    } catch (err) {
      spinner.textContent = `Could not load earlier messages: ${errorText(err)}`;
      spinner.title = spinner.textContent; // the bar is one line; the whole reason on hover
      setTimeout(() => spinner.remove(), 4000);
    } finally {
      if (gen === this.gen) this.loadingOlder = false;
    }
  }

  async loadNewer() {
    if (this.loadingNewer || !this.hasMoreAfter || !this.cid) return;
    this.loadingNewer = true;
    const gen = this.gen;
    try {
      const page = await this.app.client.listMessages(this.cid, { after: this._lastSeq(), limit: PAGE });
      if (gen !== this.gen) return;
      this.hasMoreAfter = page.has_more;
      this._insertMany(page.messages);
      this.jumpBtn.hidden = this.atLiveEnd;
      this.updateSeen();
    } catch (err) {
      this.app.toast(errorText(err));
    } finally {
      if (gen === this.gen) this.loadingNewer = false;
    }
  }

  // ----------------------------------------------------------- rendering

  _insertMany(messages) {
    this._batch = true;
    try {
      for (const m of messages) this._upsert(m, { scroll: false });
    } finally {
      this._batch = false;
    }
    this._decorate();
  }

  /** Day separators, grouping of consecutive messages from one sender, and
   * the start-of-conversation header (or the empty state), from the list
   * as it stands. Called after every change of the list's messages. */
  _decorate() {
    for (const el of this.list.querySelectorAll(':scope > li.day-sep, :scope > li.conv-start')) el.remove();
    if (!this.cid) return;
    let prev = null, prevDay = '';
    const items = [...this.list.querySelectorAll(':scope > li.msg')];
    for (const li of items) {
      const at = li.dataset.at ? new Date(li.dataset.at) : new Date();
      const day = at.toDateString();
      if (day !== prevDay) {
        li.before(h('li', { class: 'day-sep' }, h('span', null, formatDay(at))));
        prev = null;
      }
      const grouped = prev && prev.dataset.sender === li.dataset.sender && !prev.classList.contains('deleted')
        && !li.classList.contains('deleted') && at - new Date(prev.dataset.at || Date.now()) < GROUP_MS;
      li.classList.toggle('grouped', !!grouped);
      prev = li;
      prevDay = day;
    }
    if (!this.hasMoreBefore && !this.list.querySelector(':scope > li.notice.error')) {
      const c = this.app.convs.get(this.cid);
      const title = c ? this.app.convs.title(c) : '';
      const empty = items.length === 0;
      this.list.prepend(h('li', { class: 'conv-start' },
        h('p', { class: 'conv-start-title' }, `This is the start of ${title || 'the conversation'}.`),
        empty ? h('p', { class: 'muted' }, c && c.kind === 'direct'
          ? 'No messages yet. Say hello below.'
          : 'No messages yet. Write the first one below, or add people with Members.') : null));
    }
  }

  /** Adds or replaces one message, in seq order. */
  _upsert(m, { scroll = true } = {}) {
    const old = this.msgs.get(m.id);
    if (old && !m.deleted && (old.deleted || (old.version || 0) > (m.version || 0))) return;
    const stick = scroll && this.isNearBottom();
    this.msgs.set(m.id, m);
    if (m.client_id && m.sender_id === this.app.me.id) this.clientIds.add(m.client_id);
    // An optimistic copy of our own send is replaced by the real message.
    if (m.client_id && m.sender_id === this.app.me.id) {
      const p = this.pendingEls.get(m.client_id);
      if (p) { p.remove(); this._resizes.unobserve(p); this.pendingEls.delete(m.client_id); }
    }
    if (this.editing === m.id) return; // re-rendered when the edit ends
    const li = this._renderMessage(m);
    const cur = this.els.get(m.id);
    if (cur) {
      if (cur.contains(document.activeElement)) {
        // Keep keyboard focus on the same control after a re-render.
        const sel = document.activeElement.dataset.action;
        cur.replaceWith(li);
        const again = sel && li.querySelector(`[data-action="${sel}"]`);
        (again || li).focus();
      } else cur.replaceWith(li);
    } else {
      this._insertSorted(li, m.seq);
    }
    if (this.active === cur) this.setActive(li);
    if (cur) this._resizes.unobserve(cur);
    this._resizes.observe(li);
    this.els.set(m.id, li);
    if (!this._batch) this._decorate();
    if (stick) this.scrollToBottom();
  }

  _insertSorted(li, seq) {
    // Walk back from the end: most inserts are live messages at the end.
    let node = this.list.lastElementChild;
    while (node && (!node.dataset.seq || Number(node.dataset.seq) > seq)) node = node.previousElementSibling;
    if (node) node.after(li);
    else this.list.prepend(li);
  }

  _renderMessage(m) {
    const me = this.app.me.id;
    const own = m.sender_id === me;
    const conv = this.app.convs.get(this.cid);
    const canDelete = own || (conv && conv.created_by === me);
    const li = h('li', {
      class: 'msg' + (own ? ' own' : '') + (m.deleted ? ' deleted' : ''),
      dataset: { id: m.id, seq: String(m.seq), sender: m.sender_id, at: m.created_at },
      tabindex: '-1',
      'aria-label': m.deleted ? `Deleted message from ${this.app.name(m.sender_id)}` : null,
    });
    li.append(
      avatar(m.sender_id, 'msg-avatar', this.app.name(m.sender_id)),
      h('div', { class: 'msg-body' },
        h('div', { class: 'msg-head' },
          h('span', { class: 'sender', dataset: { uid: m.sender_id }, title: m.sender_id }, this._senderLabel(m.sender_id)),
          h('time', { datetime: m.created_at, title: new Date(m.created_at).toLocaleString() }, formatClock(m.created_at)),
          m.edited_at && !m.deleted ? h('span', { class: 'edited muted', title: `Edited ${new Date(m.edited_at).toLocaleString()}` }, '(edited)') : null),
        m.reply_to && !m.deleted ? this._quote(m.reply_to) : null,
        m.deleted
          ? h('p', { class: 'msg-text muted' }, 'This message was deleted.')
          : (m.text ? h('div', { class: 'msg-text' }, renderMarkdown(m.text)) : null),
        !m.deleted && m.attachments && m.attachments.length ? this.app.media.render(m.attachments) : null,
        !m.deleted ? this._reactions(m) : null,
        !m.deleted ? h('div', { class: 'msg-actions', role: 'group', 'aria-label': 'Message actions' },
          h('button', { type: 'button', class: 'act', dataset: { action: 'reply' } }, 'Reply'),
          h('button', { type: 'button', class: 'act', dataset: { action: 'react' }, 'aria-expanded': 'false', 'aria-haspopup': 'true' }, 'React'),
          own ? h('button', { type: 'button', class: 'act', dataset: { action: 'edit' } }, 'Edit') : null,
          canDelete ? h('button', { type: 'button', class: 'act danger-text', dataset: { action: 'delete' } }, 'Delete') : null) : null));
    return li;
  }

  _quote(replyId) {
    const q = this.msgs.get(replyId);
    return h('blockquote', { class: 'quote', dataset: { replyTo: replyId } },
      h('span', { class: 'quote-sender', dataset: q ? { uid: q.sender_id } : null }, q ? this.app.name(q.sender_id) : 'Earlier message'),
      h('span', { class: 'quote-text' }, q ? (q.deleted ? 'This message was deleted.' : snippet(q)) : 'not loaded'));
  }

  /** Who reacted, by name. */
  _names(users) {
    return users.map((u) => (u === this.app.me.id ? 'you' : this.app.name(u))).join(', ');
  }

  _reactions(m) {
    const entries = Object.entries(m.reactions || {}).filter(([, users]) => users && users.length);
    if (!entries.length) return null;
    const me = this.app.me.id;
    return h('div', { class: 'reactions' }, entries.map(([emoji, users]) => {
      const mine = users.includes(me);
      return h('button', {
        type: 'button', class: 'reaction' + (mine ? ' mine' : ''), dataset: { action: 'toggle-reaction', emoji },
        'aria-pressed': mine ? 'true' : 'false', title: this._names(users),
        'aria-label': `${emoji} ${users.length}, by ${this._names(users)}`,
      }, h('span', { class: 'emoji' }, emoji), ` ${users.length}`);
    }));
  }

  _renderPending() {
    for (const p of this.app.pending.values()) if (p.conversationId === this.cid) this.showPending(p);
  }

  /** Shows (or refreshes) an optimistic message. */
  showPending(p) {
    if (p.conversationId !== this.cid) return;
    if (this.clientIds.has(p.clientId)) { this.removePending(p.clientId); return; } // already delivered
    const stick = this.isNearBottom();
    const failed = p.status === 'failed';
    const queued = p.status === 'queued';
    const state = failed ? 'Not sent' : queued ? 'Waiting to send' : 'Sending…';
    const li = h('li', {
      class: 'msg own pending' + (failed ? ' failed' : '') + (queued ? ' queued' : ''),
      dataset: { clientId: p.clientId, status: p.status, sender: this.app.me.id }, tabindex: '-1',
    },
      avatar(this.app.me.id, 'msg-avatar', this.app.name(this.app.me.id)),
      h('div', { class: 'msg-body' },
        h('div', { class: 'msg-head' }, h('span', { class: 'sender', dataset: { uid: this.app.me.id } }, this._senderLabel(this.app.me.id))),
        p.replyTo ? this._quote(p.replyTo) : null,
        p.text ? h('div', { class: 'msg-text' }, renderMarkdown(p.text)) : null,
        p.attachmentInfo && p.attachmentInfo.length
          ? h('p', { class: 'muted' }, p.attachmentInfo.map((a) => `📎 ${a.name} (${formatSize(a.size)})`).join(', ')) : null,
        // The state shows on the message itself (grouped ones have no header).
        h('div', { class: 'pending-row', role: failed ? 'alert' : null },
          h('span', { class: 'pending-state', dataset: { status: p.status } }, state),
          failed ? h('span', { class: 'error' }, errorText(p.error)) : null,
          queued ? h('span', { class: 'muted' }, 'It will be sent when the connection is back.') : null,
          failed || queued ? h('button', { type: 'button', class: 'small', dataset: { action: 'retry', clientId: p.clientId } }, 'Retry') : null,
          failed || queued ? h('button', { type: 'button', class: 'small', dataset: { action: 'discard', clientId: p.clientId } }, 'Discard') : null)));
    li.dataset.at = new Date(p.createdAt || Date.now()).toISOString();
    const cur = this.pendingEls.get(p.clientId);
    if (cur) { cur.replaceWith(li); this._resizes.unobserve(cur); }
    else this.list.append(li);
    this._resizes.observe(li);
    this.pendingEls.set(p.clientId, li);
    this._decorate();
    if (stick || !cur) this.scrollToBottom();
  }

  removePending(clientId) {
    const li = this.pendingEls.get(clientId);
    if (li) { li.remove(); this._resizes.unobserve(li); this.pendingEls.delete(clientId); this._decorate(); }
  }

  /** "Seen by": each other member's read marker sits under the newest of my
   * messages it has reached. */
  updateSeen() {
    for (const el of this.list.querySelectorAll('.seen')) el.remove();
    if (!this.cid) return;
    const reads = this.app.reads.get(this.cid);
    if (!reads) return;
    const me = this.app.me.id;
    const own = [...this.list.querySelectorAll(`li.msg.own[data-seq]`)];
    if (!own.length) return;
    const byLi = new Map();
    for (const [user, seq] of reads) {
      if (user === me) continue;
      let target = null;
      for (let i = own.length - 1; i >= 0; i--) if (Number(own[i].dataset.seq) <= seq) { target = own[i]; break; }
      if (!target) continue;
      if (!byLi.has(target)) byLi.set(target, []);
      byLi.get(target).push(user);
    }
    for (const [li, users] of byLi) {
      li.querySelector('.msg-body').append(h('p', { class: 'seen muted' }, `Seen by ${users.map((u) => this.app.name(u)).sort().join(', ')}`));
    }
  }

  _senderLabel(uid) {
    const name = this.app.name(uid);
    return uid === this.app.me.id ? `${name} (you)` : name;
  }

  /** Shows the latest display names after a profile arrived or changed. */
  refreshNames() {
    for (const el of this.list.querySelectorAll('.sender[data-uid]')) {
      const text = this._senderLabel(el.dataset.uid);
      if (el.textContent !== text) el.textContent = text;
    }
    for (const el of this.list.querySelectorAll('.quote-sender[data-uid]')) el.textContent = this.app.name(el.dataset.uid);
    for (const el of this.list.querySelectorAll('.msg-avatar[data-uid]')) {
      el.replaceWith(avatar(el.dataset.uid, 'msg-avatar', this.app.name(el.dataset.uid)));
    }
    this._decorate();
    this.updateSeen();
    this.renderTyping();
  }

  renderTyping() {
    if (!this.cid) { this.typingEl.textContent = ''; return; }
    const now = Date.now();
    const t = this.app.typing.get(this.cid);
    const who = t ? [...t].filter(([u, until]) => until > now && u !== this.app.me.id).map(([u]) => this.app.name(u)) : [];
    const text = who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing…`
      : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : 'Several people are typing…';
    if (this.typingEl.textContent !== text) this.typingEl.textContent = text;
  }

  // -------------------------------------------------------------- events

  /** Applies a stream event for the open conversation. */
  handleEvent(ev) {
    if (ev.conversation_id !== this.cid) return;
    switch (ev.type) {
      case 'message.created':
        if (!this.atLiveEnd) { this.jumpBtn.hidden = false; return; }
        this._upsert(ev.message);
        if (ev.message.sender_id !== this.app.me.id) {
          announce(`${this.app.name(ev.message.sender_id)}: ${snippet(ev.message)}`);
          const t = this.app.typing.get(this.cid);
          if (t) t.delete(ev.message.sender_id);
          this.renderTyping();
        }
        this._maybeMarkRead();
        this.updateSeen();
        break;
      case 'message.updated':
        if (this.msgs.has(ev.message.id)) this._upsert(ev.message, { scroll: false });
        break;
      case 'message.deleted': {
        const m = this.msgs.get(ev.message_id);
        if (m) this._upsert({ ...m, deleted: true, text: '', attachments: [], reactions: {} }, { scroll: false });
        break;
      }
      case 'reaction.added':
      case 'reaction.removed': {
        const m = this.msgs.get(ev.message_id);
        if (!m) break;
        const reactions = { ...(m.reactions || {}) };
        const users = new Set(reactions[ev.emoji] || []);
        if (ev.type === 'reaction.added') users.add(ev.user_id); else users.delete(ev.user_id);
        if (users.size) reactions[ev.emoji] = [...users]; else delete reactions[ev.emoji];
        this.msgs.delete(m.id); // a reaction does not bump the version
        this._upsert({ ...m, reactions }, { scroll: false });
        break;
      }
      case 'read.updated':
        this.updateSeen();
        break;
      case 'typing':
        this.renderTyping();
        break;
      default:
    }
  }

  // ----------------------------------------------------------- scrolling

  isNearBottom() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
  }

  scrollToBottom() {
    this.stuck = true;
    this.list.scrollTop = this.list.scrollHeight;
  }

  _onScroll() {
    this.stuck = this.isNearBottom() && this.atLiveEnd;
    if (this.list.scrollTop < 200) this.loadOlder();
    if (this.isNearBottom()) {
      if (this.hasMoreAfter) this.loadNewer();
      else this._maybeMarkRead();
    }
  }

  _maybeMarkRead() {
    if (this.cid && this.atLiveEnd && this.isNearBottom() && document.visibilityState === 'visible') this.app.markRead(this.cid);
  }

  _highlight(li) {
    this.stuck = false;
    li.scrollIntoView({ block: 'center' });
    li.classList.add('target');
    li.focus({ preventScroll: true });
    setTimeout(() => li.classList.remove('target'), 4000);
  }

  scrollToMessage(id) {
    const li = this.els.get(id);
    if (li) this._highlight(li);
    return !!li;
  }

  // ------------------------------------------------------------- actions

  _onKeyDown(e) {
    if (e.target.closest('textarea, input')) return;
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    const items = [...this.list.querySelectorAll('li.msg')];
    const cur = e.target.closest('li.msg');
    if (!cur) {
      // From the list itself, ArrowUp enters the newest message.
      if (e.key === 'ArrowUp' && e.target === this.list && items.length) {
        e.preventDefault();
        this._arrowedAt = performance.now();
        items[items.length - 1].focus();
      }
      return;
    }
    e.preventDefault();
    const i = items.indexOf(cur) + (e.key === 'ArrowDown' ? 1 : -1);
    if (items[i]) {
      this._arrowedAt = performance.now();
      items[i].focus();
      items[i].scrollIntoView({ block: 'nearest' });
    }
  }

  async _onClick(e) {
    const q = e.target.closest('blockquote[data-reply-to]');
    if (q) { this.scrollToMessage(q.dataset.replyTo); return; }
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const action = b.dataset.action;
    if (action === 'retry') { this.app.retrySend(b.dataset.clientId); return; }
    if (action === 'discard') { this.app.discardSend(b.dataset.clientId); return; }
    const li = b.closest('li.msg');
    const m = li && this.msgs.get(li.dataset.id);
    if (!m) return;
    const client = this.app.client;
    try {
      switch (action) {
        case 'reply':
          this.app.composer.setReply(m);
          break;
        case 'react':
          this._togglePicker(li, b);
          break;
        case 'pick-reaction':
        case 'toggle-reaction': {
          const emoji = b.dataset.emoji;
          const mine = (m.reactions?.[emoji] || []).includes(this.app.me.id);
          if (mine) await client.removeReaction(this.cid, m.id, emoji);
          else await client.addReaction(this.cid, m.id, emoji);
          const picker = li.querySelector('.picker');
          if (picker) { picker.remove(); li.querySelector('[data-action="react"]').focus(); }
          break;
        }
        case 'edit':
          this._startEdit(li, m);
          break;
        case 'more-reactions':
          this._showAllReactions(li, b);
          break;
        case 'delete': {
          this.setActive(null);
          const yes = await confirmDialog({
            title: 'Delete this message?', body: 'It is deleted for everyone in the conversation. This cannot be undone.',
            confirm: 'Delete', danger: true,
          });
          if (yes) {
            await client.deleteMessage(this.cid, m.id);
            const cur = this.msgs.get(m.id) || m;
            this._upsert({ ...cur, deleted: true, text: '', attachments: [], reactions: {} }, { scroll: false });
            announce('Message deleted');
          } else if (li.isConnected) li.focus();
          break;
        }
        default:
      }
    } catch (err) {
      this.app.toast(errorText(err));
    }
  }

  _togglePicker(li, button) {
    const open = li.querySelector('.picker');
    if (open) { open.remove(); button.setAttribute('aria-expanded', 'false'); return; }
    const picker = h('div', { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction' },
      QUICK_REACTIONS.map((emoji) => h('button', { type: 'button', class: 'pick', dataset: { action: 'pick-reaction', emoji }, 'aria-label': `React with ${emoji}` }, emoji)),
      h('button', { type: 'button', class: 'pick more', dataset: { action: 'more-reactions' }, 'aria-label': 'More reactions', 'aria-expanded': 'false' }, '＋'));
    picker.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { picker.remove(); button.setAttribute('aria-expanded', 'false'); button.focus(); }
    });
    button.setAttribute('aria-expanded', 'true');
    li.querySelector('.msg-actions').after(picker);
    picker.querySelector('button').focus();
  }

  /** The picker's full set, in place of the quick row. */
  _showAllReactions(li, button) {
    const picker = li.querySelector('.picker');
    if (!picker) return;
    button.remove();
    picker.classList.add('all');
    const quick = new Set(QUICK_REACTIONS);
    picker.append(...MORE_REACTIONS.filter((e) => !quick.has(e)).map((emoji) =>
      h('button', { type: 'button', class: 'pick', dataset: { action: 'pick-reaction', emoji }, 'aria-label': `React with ${emoji}` }, emoji)));
    picker.querySelectorAll('button')[QUICK_REACTIONS.length].focus();
    if (this.stuck) this.scrollToBottom();
  }

  _startEdit(li, m) {
    this.setActive(null);
    li.classList.add('editing');
    this.editing = m.id;
    const textEl = li.querySelector('.msg-text');
    const input = h('textarea', { class: 'edit-input', 'aria-label': 'Edit message', rows: '2', maxlength: '4000' });
    input.value = m.text;
    const err = h('span', { class: 'error', role: 'alert' });
    const form = h('form', { class: 'edit-form' }, input,
      h('div', { class: 'edit-buttons' },
        h('button', { type: 'submit', class: 'small primary' }, 'Save'),
        h('button', { type: 'button', class: 'small', dataset: { role: 'cancel' } }, 'Cancel'), err));
    const finish = () => {
      this.editing = null;
      const latest = this.msgs.get(m.id);
      this.msgs.delete(m.id);
      this._upsert(latest, { scroll: false });
      const again = this.els.get(m.id);
      if (again) again.focus();
    };
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) { err.textContent = 'A message cannot be empty; delete it instead.'; return; }
      if (text === m.text) { finish(); return; }
      try {
        const cur = this.msgs.get(m.id);
        const updated = await this.app.client.editMessage(this.cid, m.id, text, cur.version);
        if (updated && updated.id) this.msgs.set(m.id, updated);
        finish();
      } catch (ex) {
        err.textContent = ex.status === 409 ? 'The message changed meanwhile; cancel to see the new version.' : errorText(ex);
      }
    });
    form.addEventListener('click', (e) => { if (e.target.dataset.role === 'cancel') finish(); });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); finish(); }
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
    });
    if (textEl) textEl.replaceWith(form); else li.querySelector('.msg-head').after(form);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }
}

function snippet(m) {
  if (m.text) {
    const t = plainText(m.text);
    return t.length > 120 ? t.slice(0, 117) + '…' : t;
  }
  if (m.attachments && m.attachments.length) return `📎 ${m.attachments[0].name}`;
  return '';
}
