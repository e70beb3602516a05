// Message search: the header's search box, a panel of filters and results,
// highlighted snippets, and a jump to each result in its conversation.
import { h, $, formatTime, setHighlight, errorText } from './dom.js';
import { PeoplePicker } from './people.js';

export class Search {
  constructor(app) {
    this.app = app;
    this.panel = $('#search-panel');
    this.input = $('#search-input');
    this.results = $('#search-results');
    this.status = $('#search-status');
    this.more = $('#search-more');
    this.nextToken = null;
    this.gen = 0;
    this.sender = new PeoplePicker(app, $('#sf-sender'), { single: true, onChange: () => this._filtersChanged() });
    this._bind();
  }

  _bind() {
    let timer = null;
    $('#search-form').addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(timer); this.run(); });
    this.input.addEventListener('input', () => {
      clearTimeout(timer);
      if (this.input.value.trim().length >= 2) timer = setTimeout(() => this.run(), 400);
    });
    this.input.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.close(); });
    $('#search-filters').addEventListener('submit', (e) => { e.preventDefault(); this.run(); });
    $('#search-filters').addEventListener('change', (e) => { if (e.target !== this.sender.input) this._filtersChanged(); });
    $('#search-close').addEventListener('click', () => this.close());
    $('#sf-clear').addEventListener('click', () => {
      $('#search-filters').reset();
      this.sender.reset();
      this._filtersChanged();
    });
    this.panel.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.close(); });
    this.more.addEventListener('click', () => this.run({ append: true }));
    this.results.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-cid]');
      if (!b) return;
      if (window.matchMedia('(max-width: 960px)').matches) this.close({ keepQuery: true });
      this.app.openConversation(b.dataset.cid, { aroundSeq: Number(b.dataset.seq), targetId: b.dataset.id });
    });
  }

  open() {
    this.syncConversations();
    this.panel.hidden = false;
    document.body.classList.add('searching');
  }

  close({ keepQuery = false } = {}) {
    this.panel.hidden = true;
    document.body.classList.remove('searching');
    if (!keepQuery) this.input.value = '';
    this.gen++;
    this.input.focus();
  }

  /** Keeps the conversation filter's options in step with the list. */
  syncConversations() {
    const sel = $('#sf-conv');
    const value = sel.value;
    const opts = [h('option', { value: '' }, 'All conversations')];
    for (const id of this.app.convs.order) {
      const c = this.app.convs.get(id);
      if (c) opts.push(h('option', { value: c.id }, this.app.convs.title(c)));
    }
    sel.replaceChildren(...opts);
    sel.value = [...sel.options].some((o) => o.value === value) ? value : '';
  }

  _filters() {
    const day = (v, plusDays = 0) => {
      if (!v) return undefined;
      const d = new Date(v + 'T00:00:00'); // local midnight
      d.setDate(d.getDate() + plusDays);
      return d;
    };
    return {
      conversationId: $('#sf-conv').value || undefined,
      senderId: this.sender.ids()[0] || undefined,
      after: day($('#sf-after').value),
      before: day($('#sf-before').value, 1), // "to" includes that whole day
      hasAttachment: $('#sf-has').checked,
    };
  }

  /** Counts the filters in use on the Filters summary, and searches again. */
  _filtersChanged() {
    if (!this.sender) return; // still being built
    const f = this._filters();
    const n = [f.conversationId, f.senderId, f.after, f.before, f.hasAttachment || undefined].filter((x) => x !== undefined).length;
    $('#search-filter-count').textContent = n ? `(${n})` : '';
    if (this.input.value.trim()) this.run();
  }

  async run({ append = false } = {}) {
    const q = this.input.value.trim();
    if (!q) return;
    this.open();
    const gen = ++this.gen;
    if (!append) { this.results.replaceChildren(); this.nextToken = null; }
    this.status.textContent = 'Searching…';
    this.more.hidden = true;
    let answer;
    try {
      answer = await this.app.client.search({ q, ...this._filters(), limit: 20, pageToken: append ? this.nextToken : undefined });
    } catch (err) {
      if (gen !== this.gen) return;
      this.status.textContent = err.status === 404 || err.status === 405 ? 'Search is not available on this server.' : `Search failed: ${errorText(err)}`;
      return;
    }
    if (gen !== this.gen) return;
    const results = answer.results || [];
    this.results.append(...results.map((r) => this._result(r)));
    const n = this.results.children.length;
    this.status.textContent = n === 0 ? `No messages match “${q}”.` : `${n} result${n === 1 ? '' : 's'}${answer.next_page_token ? ' so far' : ''}`;
    this.nextToken = answer.next_page_token || null;
    this.more.hidden = !this.nextToken;
  }

  _result({ message: m, highlights }) {
    const c = this.app.convs.get(m.conversation_id);
    const body = h('span', { class: 'result-text' });
    if (highlights && highlights.length) {
      // Server snippets hold <mark> tags; setHighlight escapes all else.
      highlights.slice(0, 3).forEach((hl, i) => {
        const part = h('span', { class: 'hl' });
        setHighlight(part, hl);
        if (i) body.append(' … ');
        body.append(part);
      });
    } else {
      body.textContent = m.text;
    }
    return h('li', null, h('button', {
      type: 'button', class: 'result', dataset: { cid: m.conversation_id, seq: String(m.seq), id: m.id },
    },
    h('span', { class: 'result-meta' },
      h('strong', null, c ? this.app.convs.title(c) : 'Conversation'), ' · ', this.app.name(m.sender_id), ' · ',
      h('time', { datetime: m.created_at }, formatTime(m.created_at)),
      m.attachments && m.attachments.length ? ' · 📎' : ''),
    body));
  }
}
