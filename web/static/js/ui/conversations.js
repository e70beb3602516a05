// The conversation list (sidebar) and the dialogs that create, rename and
// change the members of a conversation.
import { h, $, avatar, errorText, announce } from './dom.js';
import { PeoplePicker, USER_ID_RE } from './people.js';
import { confirmDialog } from './dialogs.js';
import { plainText } from './markdown.js';

/** A conversation lists its members only up to this many (API.md). */
export const MAX_LISTED_MEMBERS = 256;

/** How many members a conversation has (member_count, or the listed ones). */
export function memberCount(c) {
  if (!c) return 0;
  return typeof c.member_count === 'number' ? c.member_count : (c.members || []).length;
}

/** "1 member", "N members". */
export function membersText(c) {
  const n = memberCount(c);
  return `${n} ${n === 1 ? 'member' : 'members'}`;
}

/** The snippet a conversation's last_message makes in the list. */
function snippetOf(m) {
  if (!m) return null;
  if (m.deleted) return { sender: m.sender_id, text: 'Message deleted' };
  return { sender: m.sender_id, text: (m.text && plainText(m.text)) || (m.attachments && m.attachments.length ? '📎 ' + m.attachments[0].name : '') };
}

const MEMBERS_PAGE = 100;

export class Conversations {
  constructor(app) {
    this.app = app;
    this.map = new Map(); // id → conversation
    this.order = [];      // ids, newest activity first
    this.listEl = $('#conv-list');
    this.emptyEl = $('#conv-empty');
    this._bindList();
    this._bindNewDialog();
    this._bindRenameDialog();
    this._bindMembersDialog();
  }

  get(cid) { return this.map.get(cid); }

  /** The name a person sees for a conversation. */
  title(c) {
    if (!c) return '';
    if (c.title) return c.title;
    const others = (c.members || []).filter((m) => m !== this.app.me.id);
    if (c.kind === 'direct') return this.app.name(others[0] || this.app.me.id);
    if (!c.members) return `Group of ${membersText(c)}`; // too big to be listed
    return others.length ? others.map((m) => this.app.name(m)).join(', ') : 'Just you';
  }

  otherMember(c) {
    return c && c.kind === 'direct' ? (c.members || []).find((m) => m !== this.app.me.id) : null;
  }

  /** Reloads the whole list over REST (at start and after cursor_expired). */
  async load() {
    const list = await this.app.client.listConversations();
    this.map.clear();
    this.order = [];
    for (const c of list) {
      this.map.set(c.id, c);
      this.order.push(c.id);
      this.app.client.setFloor(c.id, c.last_seq || 0);
    }
    this.render();
  }

  /** Adds or refreshes one conversation, keeping the caller's own counters
   * when the update carries none. */
  upsert(c, { toFront = false } = {}) {
    const old = this.map.get(c.id);
    const merged = old ? { ...old, ...c } : { unread: 0, read_seq: 0, last_seq: 0, ...c };
    if (old) {
      for (const k of ['unread', 'read_seq']) if (c[k] === undefined) merged[k] = old[k];
      merged.last_seq = Math.max(old.last_seq || 0, c.last_seq || 0);
    }
    this.map.set(c.id, merged);
    if (!this.order.includes(c.id)) this.order.unshift(c.id);
    else if (toFront) this.touch(c.id);
    this.render();
    return merged;
  }

  touch(cid) {
    const i = this.order.indexOf(cid);
    if (i > 0) { this.order.splice(i, 1); this.order.unshift(cid); }
  }

  remove(cid) {
    this.map.delete(cid);
    this.order = this.order.filter((x) => x !== cid);
    this.render();
  }

  /** Makes sure a conversation named by a stream event is known. */
  // Events that arrive while it is being fetched are kept and applied after,
  // if the fetched state (as of its last_seq) does not include them yet.
  async ensure(cid, ev = null) {
    if (this.map.has(cid)) return this.map.get(cid);
    if (!this._fetching) { this._fetching = new Map(); this._held = new Map(); }
    if (ev) {
      if (!this._held.has(cid)) this._held.set(cid, []);
      this._held.get(cid).push(ev);
    }
    if (!this._fetching.has(cid)) {
      this._fetching.set(cid, this.app.client.getConversation(cid).then((c) => {
        this._fetching.delete(cid);
        const held = this._held.get(cid) || [];
        this._held.delete(cid);
        const fetchedSeq = c.last_seq || 0;
        const merged = this.upsert(c, { toFront: true });
        for (const e of held) if (typeof e.seq === 'number' && e.seq > fetchedSeq) this.handleEvent(e);
        return merged;
      }, () => { this._fetching.delete(cid); this._held.delete(cid); return null; }));
    }
    return this._fetching.get(cid);
  }

  /** Applies one stream event to the list. */
  handleEvent(ev) {
    const cid = ev.conversation_id;
    if (!cid || ev.type === 'typing') return;
    const me = this.app.me.id;
    if (ev.type === 'member.removed' && ev.user_id === me) {
      this.remove(cid);
      if (this.app.currentCid === cid) this.app.closeConversation({ notice: 'You left the conversation, or were removed from it.' });
      return;
    }
    const c = this.map.get(cid);
    if (!c && ev.type === 'member.added' && ev.user_id === me && ev.conversation) {
      // The event carries a snapshot of the conversation we were added to.
      this.upsert({ unread: 0, read_seq: 0, ...ev.conversation, last_seq: Math.max(ev.conversation.last_seq || 0, ev.seq) }, { toFront: true });
      return;
    }
    if (!c) { this.ensure(cid, ev); return; }
    if (typeof ev.seq === 'number') c.last_seq = Math.max(c.last_seq || 0, ev.seq);
    switch (ev.type) {
      case 'message.created': {
        const m = ev.message;
        c.last_message = m;
        if (m.sender_id !== me) {
          if (this.app.isReading(cid)) this.app.markRead(cid);
          else c.unread = (c.unread || 0) + 1;
        }
        this.touch(cid);
        break;
      }
      case 'message.updated':
        // An edit of the last message changes the preview too.
        if (ev.message && c.last_message && c.last_message.id === ev.message.id) c.last_message = ev.message;
        break;
      case 'message.deleted':
        // The preview never keeps a deleted message's text.
        if (c.last_message && c.last_message.id === ev.message_id) {
          c.last_message = { ...c.last_message, deleted: true, text: '', attachments: [] };
        }
        break;
      case 'member.added':
        this._memberAdded(c, ev.user_id, ev.conversation);
        break;
      case 'member.removed':
        this._memberRemoved(c, ev.user_id);
        break;
      case 'conversation.updated':
        if (ev.conversation) this.upsert({ ...ev.conversation, last_seq: Math.max(c.last_seq, ev.conversation.last_seq || 0) });
        break;
      case 'read.updated':
        if (ev.user_id === me) {
          c.read_seq = Math.max(c.read_seq || 0, typeof ev.read_seq === 'number' ? ev.read_seq : ev.seq);
          if (c.read_seq >= c.last_seq) c.unread = 0;
        }
        break;
      default:
    }
    this.render();
  }

  /** Applies a member.added event; its conversation snapshot, when there
   * is one, gives the count (and the list, up to MAX_LISTED_MEMBERS). */
  _memberAdded(c, uid, snap) {
    if (snap && typeof snap.member_count === 'number') {
      c.member_count = snap.member_count;
      if (snap.members) c.members = snap.members; else delete c.members;
    } else if (!c.members || !c.members.includes(uid)) {
      if (c.members) c.members = [...c.members, uid];
      c.member_count = memberCount(c) + (c.members ? 0 : 1);
      if (c.member_count > MAX_LISTED_MEMBERS) delete c.members;
    }
    this._membersChanged(c);
  }

  /** Applies a member.removed event. */
  _memberRemoved(c, uid) {
    if (c.members) {
      if (!c.members.includes(uid)) return;
      c.members = c.members.filter((m) => m !== uid);
      c.member_count = c.members.length;
    } else {
      c.member_count = Math.max(0, memberCount(c) - 1);
    }
    this._membersChanged(c);
  }

  /** Reloads the open members dialog of c. */
  _membersChanged(c) {
    if (this._membersPage && this._membersPage.cid === c.id) {
      this._membersPage.stale = true;
      if (this.membersDialog && this.membersDialog.open) this.renderMembers();
    }
  }

  render() {
    const focusedCid = document.activeElement && document.activeElement.closest
      && document.activeElement.closest('#conv-list') ? document.activeElement.dataset.cid : null;
    const items = this.order.map((id) => this.map.get(id)).filter(Boolean).map((c) => this._item(c));
    this.listEl.replaceChildren(...items);
    this.emptyEl.hidden = items.length > 0;
    if (focusedCid) {
      const b = this.listEl.querySelector(`button[data-cid="${CSS.escape(focusedCid)}"]`);
      if (b) b.focus();
    }
    this.app.onConversationsChanged();
  }

  _item(c) {
    const title = this.title(c);
    const other = this.otherMember(c);
    const current = c.id === this.app.currentCid;
    const unread = current ? 0 : (c.unread || 0);
    const snippet = snippetOf(c.last_message);
    const online = other ? this.app.online.has(other) : (c.members || []).some((m) => m !== this.app.me.id && this.app.online.has(m));
    const av = other ? avatar(other, 'conv-avatar', this.app.name(other)) : avatar(c.id, 'conv-avatar', title);
    const dot = h('span', { class: 'presence-dot' + (online ? ' online' : ''), 'aria-hidden': 'true' });
    return h('li', null,
      h('button', {
        type: 'button', class: 'conv-item' + (unread ? ' has-unread' : ''), dataset: { cid: c.id },
        'aria-current': current ? 'page' : null,
      },
      h('span', { class: 'conv-avatar-wrap' }, av, dot),
      h('span', { class: 'conv-text' },
        h('span', { class: 'conv-name' }, title),
        h('span', { class: 'conv-snippet muted' },
          snippet ? `${snippet.sender === this.app.me.id ? 'You' : this.app.name(snippet.sender)}: ${snippet.text}`
            : (c.kind === 'direct' ? 'Direct message' : membersText(c)))),
      online && other ? h('span', { class: 'visually-hidden' }, ', online') : null,
      unread ? h('span', { class: 'badge' }, h('span', { 'aria-hidden': 'true' }, unread > 99 ? '99+' : String(unread)),
        h('span', { class: 'visually-hidden' }, `, ${unread} unread`)) : null));
  }

  _bindList() {
    this.listEl.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-cid]');
      if (b) this.app.openConversation(b.dataset.cid, { focusComposer: true });
    });
    // Arrow keys move between conversations.
    this.listEl.addEventListener('keydown', (e) => {
      if (!['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key)) return;
      const buttons = [...this.listEl.querySelectorAll('button[data-cid]')];
      const i = buttons.indexOf(document.activeElement);
      if (i < 0) return;
      e.preventDefault();
      const j = e.key === 'Home' ? 0 : e.key === 'End' ? buttons.length - 1
        : Math.max(0, Math.min(buttons.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
      buttons[j].focus();
    });
  }

  // ---------------------------------------------------------------- dialogs

  _bindNewDialog() {
    const dlg = $('#new-conv-dialog');
    const form = $('#new-conv-form');
    const name = $('#new-conv-name');
    const nameLabel = $('#new-conv-name-label');
    const membersLabel = $('#new-conv-members-label');
    const hint = $('#new-conv-members-hint');
    const err = $('#new-conv-error');
    const picker = new PeoplePicker(this.app, $('#new-conv-members'), { exclude: [this.app.me.id] });
    this.newConvPicker = picker;
    const syncKind = () => {
      const direct = form.elements.kind.value === 'direct';
      name.hidden = direct;
      nameLabel.hidden = direct;
      picker.single = direct;
      if (direct && picker.chosen.length > 1) { picker.chosen = picker.chosen.slice(0, 1); picker._render(); }
      else picker._render();
      membersLabel.textContent = direct ? 'Person' : 'Members';
      picker.input.placeholder = direct ? 'Search for a person' : 'Search by name or user id';
      hint.textContent = direct
        ? 'A direct conversation is with one other person.'
        : 'Type a name or a user id, then pick from the list. Someone who has not signed in yet can be added by id.';
    };
    form.addEventListener('change', (e) => { if (e.target.name === 'kind') { err.textContent = ''; syncKind(); } });
    $('#new-conv-btn').addEventListener('click', () => {
      form.reset();
      picker.reset();
      err.textContent = '';
      syncKind();
      dlg.showModal();
      form.querySelector('input[name="kind"]:checked').focus();
    });
    $('#new-conv-cancel').addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const kind = form.elements.kind.value;
      const bad = picker.input.value.trim() ? picker.commitTyped() : [];
      const fail = (text, el) => { err.textContent = text; (el || picker.input).focus(); };
      if (bad.length) { fail(`“${bad[0]}” is not a valid user id (letters, digits and . _ @ - only).`); return; }
      const ids = picker.ids().filter((id) => id !== this.app.me.id && USER_ID_RE.test(id));
      const title = name.value.trim();
      if (kind === 'direct' && ids.length !== 1) { fail('Choose the one person this direct conversation is with.'); return; }
      if (kind === 'group' && !ids.length && !title) {
        fail('Add at least one member, or give the group a title.', name);
        return;
      }
      err.textContent = '';
      const submit = form.querySelector('button[type="submit"]');
      submit.disabled = true;
      try {
        const c = await this.app.client.createConversation({ kind, title: kind === 'group' ? title : '', members: ids });
        this.upsert(c, { toFront: true });
        dlg.close();
        this.app.openConversation(c.id, { focusComposer: true });
        announce(`Conversation ${this.title(c)} opened`);
      } catch (ex) {
        err.textContent = errorText(ex);
      } finally {
        submit.disabled = false;
      }
    });
  }

  _bindRenameDialog() {
    const dlg = $('#rename-dialog');
    const input = $('#rename-input');
    const err = $('#rename-error');
    $('#rename-btn').addEventListener('click', () => {
      const c = this.get(this.app.currentCid);
      if (!c) return;
      input.value = c.title || '';
      err.textContent = '';
      dlg.showModal();
      input.select();
    });
    $('#rename-cancel').addEventListener('click', () => dlg.close());
    $('#rename-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const cid = this.app.currentCid;
      try {
        const c = await this.app.client.renameConversation(cid, input.value.trim());
        this.upsert(c);
        dlg.close();
      } catch (ex) {
        err.textContent = errorText(ex);
      }
    });
  }

  _bindMembersDialog() {
    const dlg = $('#members-dialog');
    const err = $('#members-error');
    const picker = new PeoplePicker(this.app, $('#add-member-input'), { single: true });
    this.addMemberPicker = picker;
    this.membersDialog = dlg;
    $('#members-btn').addEventListener('click', () => {
      err.textContent = '';
      picker.reset();
      this._membersPage = null;
      this.renderMembers();
      dlg.showModal();
    });
    $('#members-more').addEventListener('click', () => this._loadMembers());
    $('#members-close').addEventListener('click', () => dlg.close());
    $('#add-member-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const bad = picker.input.value.trim() ? picker.commitTyped() : [];
      if (bad.length) { err.textContent = `“${bad[0]}” is not a valid user id.`; picker.focus(); return; }
      const uid = picker.ids()[0];
      if (!uid) { err.textContent = 'Choose a person to add.'; picker.focus(); return; }
      const cid = this.app.currentCid;
      try {
        const added = await this.app.client.addMember(cid, uid);
        const c = this.get(cid);
        if (c && added && typeof added.member_count === 'number') {
          c.member_count = added.member_count;
          if (added.members) c.members = added.members; else delete c.members;
        }
        this._membersPage = null;
        picker.reset();
        picker.focus();
        err.textContent = '';
        announce(`${this.app.name(uid)} added`);
        this.renderMembers();
        this.render();
      } catch (ex) {
        err.textContent = errorText(ex);
      }
    });
    $('#members-list').addEventListener('click', async (e) => {
      const b = e.target.closest('button[data-remove]');
      if (!b) return;
      await this._removeMember(b.dataset.remove);
    });
    $('#leave-btn').addEventListener('click', async () => {
      const yes = await confirmDialog({
        title: 'Leave this conversation?', body: 'You will no longer get its messages. A member can add you again.',
        confirm: 'Leave', danger: true,
      });
      if (!yes) return;
      if (await this._removeMember(this.app.me.id)) dlg.close();
    });
  }

  async _removeMember(uid) {
    const cid = this.app.currentCid;
    const err = $('#members-error');
    try {
      await this.app.client.removeMember(cid, uid);
      if (uid === this.app.me.id) {
        this.remove(cid);
        this.app.closeConversation();
        return true;
      }
      // The member.removed event updates the count; the list reloads.
      this._membersPage = null;
      this.renderMembers();
      this.render();
      return true;
    } catch (ex) {
      err.textContent = errorText(ex);
      return false;
    }
  }

  /** Shows the members dialog's list: the members paged through
   * GET …/members (MEMBERS_PAGE at a time, "Show more members" for the
   * next page), so a conversation of any size opens at once. */
  renderMembers() {
    const c = this.get(this.app.currentCid);
    if (!c) return;
    const direct = c.kind === 'direct';
    $('#members-title').textContent = `Members of ${this.title(c)}`;
    $('#members-count').textContent = membersText(c);
    $('#add-member-form').hidden = direct;
    $('#leave-btn').hidden = direct;
    const page = this._membersPage;
    if (!page || page.cid !== c.id || page.stale) {
      this._membersPage = { cid: c.id, ids: [], next: null, done: false, loading: false };
      this._loadMembers();
      return;
    }
    this._drawMembers(c);
  }

  async _loadMembers() {
    const page = this._membersPage;
    if (!page || page.loading || page.done) return;
    page.loading = true;
    const err = $('#members-error');
    try {
      const res = await this.app.client.listMembers(page.cid, { after: page.next || undefined, limit: MEMBERS_PAGE });
      if (this._membersPage !== page) return; // reopened or changed meanwhile
      page.ids.push(...res.members);
      page.next = res.next_after;
      page.done = !res.next_after;
    } catch (ex) {
      err.textContent = errorText(ex);
    } finally {
      page.loading = false;
    }
    const c = this.get(page.cid);
    if (c && this._membersPage === page) this._drawMembers(c);
  }

  _drawMembers(c) {
    const page = this._membersPage;
    const me = this.app.me.id;
    const direct = c.kind === 'direct';
    const canRemoveOthers = c.created_by === me;
    const ids = page.ids;
    $('#members-list').replaceChildren(...ids.map((m) => {
      const online = this.app.online.has(m) || m === me;
      return h('li', { class: 'member' },
        h('span', { class: 'conv-avatar-wrap' }, avatar(m, '', this.app.name(m)), h('span', { class: 'presence-dot' + (online ? ' online' : ''), 'aria-hidden': 'true' })),
        h('span', { class: 'member-name', title: m }, m === me ? `${this.app.name(m)} (you)` : this.app.name(m),
          h('span', { class: 'muted member-state' }, online ? ' online' : ' offline'),
          m === c.created_by ? h('span', { class: 'muted' }, ' · creator') : null),
        !direct && m !== me && canRemoveOthers
          ? h('button', { type: 'button', class: 'small', dataset: { remove: m }, 'aria-label': `Remove ${this.app.name(m)}` }, 'Remove') : null);
    }));
    $('#members-more').hidden = page.done;
  }
}
