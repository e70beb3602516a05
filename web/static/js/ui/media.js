// Attachments in messages. Their URLs need the bearer token, which <img>
// and <a href> cannot send, so the bytes are fetched by the client and shown
// through object URLs (CSP: img-src blob:).
import { h, formatSize, errorText } from './dom.js';

const THUMBNAIL_RETRIES_MS = [1500, 4000, 10000, 20000];

export class Media {
  constructor(app) {
    this.app = app;
    this.urls = new Map(); // "id:thumb" | "id:full" → Promise<object URL>
  }

  _url(id, thumbnail) {
    const key = id + (thumbnail ? ':thumb' : ':full');
    let p = this.urls.get(key);
    if (!p) {
      p = this.app.client.fetchAttachment(id, { thumbnail }).then((blob) => URL.createObjectURL(blob));
      p.catch(() => this.urls.delete(key)); // let a later try fetch again
      this.urls.set(key, p);
    }
    return p;
  }

  isImage(att) {
    return /^image\/(png|jpeg|gif|webp)$/i.test(att.content_type || '');
  }

  /** The attachments of a message, as one element. */
  render(attachments) {
    return h('div', { class: 'attachments' }, attachments.map((a) => (this.isImage(a) ? this._image(a) : this._file(a))));
  }

  _image(att) {
    const img = h('img', { alt: att.name || 'image', class: 'att-img', decoding: 'async' });
    const status = h('span', { class: 'att-status muted' }, 'Loading image…');
    const open = h('button', { type: 'button', class: 'img-btn', 'aria-label': `Open image ${att.name}` }, img, status);
    open.addEventListener('click', () => this._open(att));
    this._loadImage(img, status, att);
    return h('figure', { class: 'att-image', dataset: { attachmentId: att.id } }, open,
      h('figcaption', { class: 'muted' }, `${att.name} · ${formatSize(att.size)}`));
  }

  async _loadImage(img, status, att) {
    try {
      img.src = await this._url(att.id, true);
      img.dataset.variant = 'thumbnail';
      status.remove();
      return;
    } catch (err) {
      if (err.status !== 404) { status.textContent = 'Image unavailable'; return; }
    }
    // No thumbnail yet (the media worker makes it a moment after posting):
    // show the attachment itself, and swap in the thumbnail once it exists.
    try {
      img.src = await this._url(att.id, false);
      img.dataset.variant = 'full';
      status.remove();
    } catch (err) {
      status.textContent = err.status === 404 ? 'Image unavailable' : errorText(err);
      return;
    }
    for (const wait of THUMBNAIL_RETRIES_MS) {
      await new Promise((r) => setTimeout(r, wait));
      if (!img.isConnected) return;
      try {
        img.src = await this._url(att.id, true);
        img.dataset.variant = 'thumbnail';
        return;
      } catch { /* not yet */ }
    }
  }

  _file(att) {
    const b = h('button', { type: 'button', class: 'file-link', 'aria-label': `Download ${att.name}, ${formatSize(att.size)}` },
      h('span', { 'aria-hidden': 'true' }, '📄 '), h('span', { class: 'file-name' }, att.name),
      h('span', { class: 'muted' }, ` ${formatSize(att.size)}`));
    b.addEventListener('click', () => this._download(att, b));
    return h('div', { class: 'att-file', dataset: { attachmentId: att.id } }, b);
  }

  async _open(att) {
    try {
      const url = await this._url(att.id, false);
      window.open(url, '_blank', 'noopener');
    } catch (err) {
      this.app.toast(errorText(err));
    }
  }

  async _download(att, button) {
    button.disabled = true;
    try {
      const url = await this._url(att.id, false);
      const a = h('a', { href: url, download: att.name || 'download', hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      this.app.toast(errorText(err));
    } finally {
      button.disabled = false;
    }
  }
}
