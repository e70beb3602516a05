// A people picker: a combobox that searches the directory (GET /v1/users?q=)
// as the person types, and shows the chosen people as removable chips.
// An id the directory does not know can still be added (a member may sign
// in later); the picker says so rather than listing them as offline.
import { h, avatar, errorText } from './dom.js';

export const USER_ID_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const NOT_SIGNED_IN = 'has not signed in yet, or is not in your directory';
let seq = 0;

export class PeoplePicker {
  /**
   * input: the text input to turn into the combobox (its <label> stays).
   * single: at most one person. exclude: ids never offered (the caller).
   * onChange(ids): after each change of the chosen people.
   */
  constructor(app, input, { single = false, exclude = [], onChange = null } = {}) {
    this.app = app;
    this.input = input;
    this.single = single;
    this.exclude = new Set(exclude);
    this.onChange = onChange;
    this.chosen = []; // {id, name, known}
    this.options = [];
    this.activeIndex = -1;
    this.gen = 0;
    const id = `pp-${++seq}`;
    this.listbox = h('ul', { id: `${id}-list`, class: 'pp-options', role: 'listbox', 'aria-label': 'Suggestions', hidden: true });
    this.chips = h('ul', { class: 'pp-chips', 'aria-label': 'Chosen people' });
    this.status = h('p', { class: 'pp-status muted', 'aria-live': 'polite' });
    this.root = h('div', { class: 'pp' });
    input.replaceWith(this.root);
    this.root.append(this.chips, h('div', { class: 'pp-box' }, input, this.listbox), this.status);
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-expanded', 'false');
    input.setAttribute('aria-controls', this.listbox.id);
    input.autocomplete = 'off';
    this._optionId = (i) => `${id}-opt-${i}`;
    this._bind();
    this._render();
  }

  _bind() {
    this.input.addEventListener('input', () => {
      clearTimeout(this._timer);
      if (!this.input.value.trim()) { this.gen++; this._close(); return; }
      this._timer = setTimeout(() => this._search(), 120);
    });
    this.input.addEventListener('keydown', (e) => this._onKey(e));
    this.input.addEventListener('blur', () => setTimeout(() => {
      if (!this.root.contains(document.activeElement)) this._close();
    }, 150));
    this.listbox.addEventListener('mousedown', (e) => e.preventDefault()); // keep focus in the input
    this.listbox.addEventListener('click', (e) => {
      const li = e.target.closest('li[data-index]');
      if (li) this._pick(Number(li.dataset.index));
    });
    this.chips.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-remove]');
      if (!b) return;
      this.chosen = this.chosen.filter((p) => p.id !== b.dataset.remove);
      this._render();
      this.focus();
    });
  }

  _onKey(e) {
    const open = !this.listbox.hidden && this.options.length > 0;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (!open) { this._search(); return; }
      e.preventDefault();
      this._arrowed = true;
      const n = this.options.length;
      if (e.key === 'ArrowDown') this.activeIndex = (this.activeIndex + 1) % n;
      else this.activeIndex = this.activeIndex <= 0 ? n - 1 : this.activeIndex - 1;
      this._renderOptions();
    } else if (e.key === 'Enter') {
      if (this.input.value.trim()) { e.preventDefault(); this._enter(); }
    } else if (e.key === ',' || e.key === ';') {
      if (this.input.value.trim()) { e.preventDefault(); this.commitTyped(); }
    } else if (e.key === 'Escape') {
      if (open) { e.preventDefault(); e.stopPropagation(); this._close(); }
    } else if (e.key === 'Backspace' && !this.input.value && this.chosen.length) {
      this.chosen.pop();
      this._render();
    }
  }

  /** Enter: the typed id itself when the directory knows it, else the
   * highlighted suggestion, else what is typed. Suggestions made for
   * other text (typing ran ahead of the search) are asked for again first. */
  async _enter() {
    const typed = this.input.value.trim();
    if (this._optionsFor !== typed) {
      clearTimeout(this._timer);
      await this._search();
      if (this.input.value.trim() !== typed) return; // typed on meanwhile
    }
    const open = !this.listbox.hidden && this.options.length > 0;
    const exact = this.options.findIndex((o) => o.known && o.id === typed);
    if (open && exact >= 0 && !this._arrowed) this._pick(exact);
    else if (open && this.activeIndex >= 0) this._pick(this.activeIndex);
    else this.commitTyped();
  }

  async _search() {
    const q = this.input.value.trim();
    this._arrowed = false;
    const gen = ++this.gen;
    if (this.single && this.chosen.length) { this._close(); return; }
    let users = [];
    try {
      users = await this.app.client.searchUsers(q, 8);
    } catch (err) {
      if (gen === this.gen) this.status.textContent = `Directory search failed: ${errorText(err)}`;
    }
    if (gen !== this.gen) return;
    this._optionsFor = q;
    const taken = new Set(this.chosen.map((p) => p.id));
    this.options = users.filter((u) => !taken.has(u.id) && !this.exclude.has(u.id))
      .map((u) => ({ id: u.id, name: u.name || u.id, known: true }));
    for (const u of users) if (u.name) this.app.setName(u.id, u.name);
    if (q && USER_ID_RE.test(q) && !this.exclude.has(q) && !taken.has(q) && !users.some((u) => u.id === q)) {
      this.options.push({ id: q, name: q, known: false });
    }
    this.activeIndex = this.options.length ? 0 : -1;
    this._renderOptions();
  }

  _renderOptions() {
    const open = this.options.length > 0 && document.activeElement === this.input;
    this.listbox.hidden = !open;
    this.input.setAttribute('aria-expanded', open ? 'true' : 'false');
    this.listbox.replaceChildren(...this.options.map((o, i) => h('li', {
      id: this._optionId(i), class: 'pp-option', role: 'option', dataset: { index: String(i) },
      'aria-selected': i === this.activeIndex ? 'true' : 'false',
    },
    avatar(o.id, 'pp-avatar', o.name),
    h('span', { class: 'pp-text' },
      h('span', { class: 'pp-name' }, o.known ? o.name : `Add “${o.id}”`),
      h('span', { class: 'pp-id muted' }, o.known ? (o.name !== o.id ? o.id : '') : NOT_SIGNED_IN)))));
    if (this.activeIndex >= 0 && open) this.input.setAttribute('aria-activedescendant', this._optionId(this.activeIndex));
    else this.input.removeAttribute('aria-activedescendant');
    const active = this.listbox.children[this.activeIndex];
    if (active && active.scrollIntoView) active.scrollIntoView({ block: 'nearest' });
  }

  _close() {
    clearTimeout(this._timer);
    this._arrowed = false;
    this._optionsFor = null;
    this.options = [];
    this.activeIndex = -1;
    this._renderOptions();
  }

  _pick(i) {
    const o = this.options[i];
    if (!o) return;
    this._add(o);
    this.input.value = '';
    this._close();
    this.focus();
  }

  /** Focuses the input, or the chip's remove button when a single pick is made. */
  focus() {
    if (this.input.hidden) { const b = this.chips.querySelector('.pp-remove'); if (b) b.focus(); }
    else this.input.focus();
  }

  _add(p) {
    if (this.chosen.some((c) => c.id === p.id)) return;
    if (this.single) this.chosen = [];
    this.chosen.push(p);
    this._render();
  }

  /**
   * Turns what is typed (ids separated by commas or spaces) into chips.
   * Returns the ids that are not valid user ids, which stay typed.
   */
  commitTyped() {
    this.gen++; // a search still running for the typed text is moot
    const parts = this.input.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
    const bad = parts.filter((id) => !USER_ID_RE.test(id));
    if (bad.length) { this._close(); return bad; } // all or nothing: the text stays to be corrected
    for (const id of parts) {
      if (this.exclude.has(id)) continue;
      this._add({ id, name: this.app.names.get(id) || id, known: null });
      this._check(id);
    }
    this.input.value = '';
    this._close();
    return [];
  }

  /** Asks the directory whether a typed id is known, for its chip's note. */
  async _check(id) {
    let known = false;
    try {
      const users = await this.app.client.searchUsers(id, 8);
      const u = users.find((x) => x.id === id);
      if (u) { known = true; if (u.name) this.app.setName(u.id, u.name); }
    } catch { known = null; }
    const p = this.chosen.find((c) => c.id === id);
    if (p && p.known === null) { p.known = known; if (known) p.name = this.app.names.get(id) || id; this._render(); }
  }

  /** The chosen ids (typed text not yet turned into chips included). */
  ids() {
    return this.chosen.map((p) => p.id);
  }

  reset() {
    this.chosen = [];
    this.input.value = '';
    this.status.textContent = '';
    this._close();
    this._render();
  }

  _render() {
    this.chips.replaceChildren(...this.chosen.map((p) => h('li', { class: 'pp-chip' + (p.known === false ? ' unknown' : '') },
      avatar(p.id, 'pp-avatar', p.name),
      h('span', { class: 'pp-chip-name', title: p.id }, p.name),
      p.known === false ? h('span', { class: 'pp-note', title: `${p.id} ${NOT_SIGNED_IN}` }, 'has not signed in yet') : null,
      h('button', { type: 'button', class: 'icon-btn pp-remove', dataset: { remove: p.id }, 'aria-label': `Remove ${p.name}` }, '✕'))));
    this.chips.hidden = this.chosen.length === 0;
    this.input.hidden = this.single && this.chosen.length > 0;
    if (this.onChange) this.onChange(this.ids());
  }
}
