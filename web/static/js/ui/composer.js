// The message box: text, reply-to, file attachments (picker, drag-and-drop,
// paste) with upload progress, typing notifications and sending.
import { h, $, formatSize, errorText } from './dom.js';

const MAX_TEXT = 4000;

export class Composer {
  constructor(app) {
    this.app = app;
    this.form = $('#composer');
    this.input = $('#message-input');
    this.fileInput = $('#file-input');
    this.stagedEl = $('#staged-files');
    this.errorEl = $('#composer-error');
    this.replyEl = $('#reply-preview');
    this.cid = null;
    this.reply = null;  // message being replied to
    this.staged = [];   // {key, file, progress, status, attachment, promise, abort, error}
    this.drafts = new Map(); // conversation id → unsent text
    this._bind();
  }

  setConversation(cid) {
    if (this.cid) this.drafts.set(this.cid, this.input.value);
    for (const s of this.staged) if (s.status === 'uploading') s.abort.abort();
    this.staged = [];
    this.renderStaged();
    this.cid = cid;
    this.input.value = (cid && this.drafts.get(cid)) || '';
    this.setReply(null);
    this.errorEl.textContent = '';
    this._autosize();
  }

  focus() { this.input.focus(); }

  setReply(m) {
    this.reply = m;
    this.replyEl.hidden = !m;
    if (m) {
      $('#reply-sender').textContent = this.app.name(m.sender_id);
      $('#reply-text').textContent = m.text ? (m.text.length > 140 ? m.text.slice(0, 137) + '…' : m.text)
        : (m.attachments && m.attachments.length ? `📎 ${m.attachments[0].name}` : '');
      this.input.focus();
    }
  }

  _bind() {
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
      if (e.key === 'Escape' && this.reply) { e.preventDefault(); this.setReply(null); }
    });
    this.input.addEventListener('input', () => {
      this._autosize();
      if (this.cid && this.input.value.trim()) this.app.client.typing(this.cid);
    });
    $('#reply-cancel').addEventListener('click', () => { this.setReply(null); this.input.focus(); });
    $('#attach-btn').addEventListener('click', () => this.fileInput.click());
    this.fileInput.addEventListener('change', () => {
      this.addFiles([...this.fileInput.files]);
      this.fileInput.value = '';
    });
    this.input.addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (files.length) { e.preventDefault(); this.addFiles(files); }
    });
    // Drag and drop anywhere on the open conversation.
    const zone = $('#conv-view');
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    zone.addEventListener('dragenter', (e) => { if (hasFiles(e)) { depth++; zone.classList.add('dragging'); e.preventDefault(); } });
    zone.addEventListener('dragover', (e) => { if (hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; } });
    zone.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; zone.classList.remove('dragging'); } });
    zone.addEventListener('drop', (e) => {
      depth = 0;
      zone.classList.remove('dragging');
      if (!hasFiles(e)) return;
      e.preventDefault();
      this.addFiles([...e.dataTransfer.files]);
    });
    this.stagedEl.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-key]');
      if (!b) return;
      const s = this.staged.find((x) => x.key === b.dataset.key);
      if (!s) return;
      if (s.status === 'uploading') s.abort.abort();
      this.staged = this.staged.filter((x) => x !== s);
      this.renderStaged();
      this.input.focus();
    });
  }

  _autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(this.input.scrollHeight + 2, 200) + 'px';
  }

  /** Stages files and starts uploading them at once. */
  addFiles(files) {
    if (!this.cid) return;
    for (const file of files) {
      const s = { key: 'f' + Math.random().toString(36).slice(2), file, progress: 0, status: 'uploading', abort: new AbortController() };
      s.promise = this.app.client.uploadAttachment(file, {
        signal: s.abort.signal,
        onProgress: (loaded, total) => { s.progress = total ? loaded / total : 0; this._updateProgress(s); },
      }).then((att) => { s.status = 'done'; s.attachment = att; this.renderStaged(); },
        (err) => { s.status = 'error'; s.error = err; this.renderStaged(); });
      this.staged.push(s);
    }
    this.renderStaged();
  }

  _updateProgress(s) {
    const bar = this.stagedEl.querySelector(`li[data-key="${s.key}"] progress`);
    if (bar) bar.value = Math.round(s.progress * 100);
  }

  renderStaged() {
    this.stagedEl.replaceChildren(...this.staged.map((s) => h('li', { class: 'staged ' + s.status, dataset: { key: s.key } },
      h('span', { class: 'staged-name' }, `📎 ${s.file.name}`),
      h('span', { class: 'muted' }, ` ${formatSize(s.file.size)}`),
      s.status === 'uploading'
        ? h('progress', { max: '100', value: String(Math.round(s.progress * 100)), 'aria-label': `Uploading ${s.file.name}` }) : null,
      s.status === 'done' ? h('span', { class: 'staged-ok' }, ' ✓ uploaded') : null,
      s.status === 'error' ? h('span', { class: 'error' }, ` ${errorText(s.error)}`) : null,
      h('button', { type: 'button', class: 'icon-btn', dataset: { key: s.key }, 'aria-label': `Remove ${s.file.name}` }, '✕'))));
    this.stagedEl.hidden = this.staged.length === 0;
  }

  async submit() {
    const cid = this.cid;
    if (!cid) return;
    const text = this.input.value.trim();
    if (!text && this.staged.length === 0) return;
    if (text.length > MAX_TEXT) { this.errorEl.textContent = `A message holds at most ${MAX_TEXT} characters.`; return; }
    this.errorEl.textContent = '';
    const staged = this.staged;
    if (staged.some((s) => s.status === 'uploading')) {
      this.errorEl.textContent = 'Waiting for uploads to finish…';
      await Promise.all(staged.map((s) => s.promise));
      if (this.cid !== cid) return;
      this.errorEl.textContent = '';
    }
    if (staged.some((s) => s.status === 'error')) {
      this.errorEl.textContent = 'Some files failed to upload; remove them to send the rest.';
      return;
    }
    const attachments = staged.map((s) => s.attachment);
    const replyTo = this.reply ? this.reply.id : null;
    this.input.value = '';
    this.drafts.delete(cid);
    this.staged = [];
    this.renderStaged();
    this.setReply(null);
    this._autosize();
    this.input.focus();
    this.app.send(cid, { text, attachments: attachments.map((a) => a.id), attachmentInfo: attachments, replyTo });
  }
}
