// The durable outbox: every send is written to IndexedDB, keyed by its
// client_id, before it is posted, and deleted once the server confirmed it.
// What is left there (the page was closed, reloaded or offline) is sent
// again with the same client_id, which the server deduplicates, so a send
// arrives exactly once however often it is retried.
//
// A record: {clientId, userId, conversationId, text, attachments (ids),
// attachmentInfo, replyTo, createdAt, status}. status is 'sending',
// 'queued' (failed for a reason that passes: offline, server away; retried
// on reconnect) or 'failed' (refused; retried only by hand).

const DB_NAME = 'parley-outbox';
const STORE = 'sends';

function promisify(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class Outbox {
  /** userId scopes the records: one browser may be used by several people. */
  constructor(userId, { indexedDB = globalThis.indexedDB } = {}) {
    this.userId = userId;
    this._idb = indexedDB;
    this._db = null;
    this._memory = new Map(); // when IndexedDB is unavailable (private modes): this page only
  }

  async _open() {
    if (this._db || !this._idb) return this._db;
    try {
      const req = this._idb.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'clientId' });
      };
      this._db = await promisify(req);
    } catch {
      this._idb = null; // fall back to memory for the page's life
    }
    return this._db;
  }

  async _tx(mode, fn) {
    const db = await this._open();
    if (!db) return fn(null);
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    const result = await fn(tx.objectStore(STORE));
    await done;
    return result;
  }

  /** Stores (or replaces) a record. Resolves once it is durable. */
  put(rec) {
    const r = { ...rec, userId: this.userId };
    return this._tx('readwrite', (store) => {
      if (!store) { this._memory.set(r.clientId, r); return null; }
      return promisify(store.put(r));
    });
  }

  /** Changes fields of a stored record (no-op when it is gone). */
  update(clientId, fields) {
    return this._tx('readwrite', async (store) => {
      if (!store) {
        const cur = this._memory.get(clientId);
        if (cur) this._memory.set(clientId, { ...cur, ...fields });
        return null;
      }
      const cur = await promisify(store.get(clientId));
      if (cur) await promisify(store.put({ ...cur, ...fields }));
      return null;
    });
  }

  delete(clientId) {
    return this._tx('readwrite', (store) => {
      if (!store) { this._memory.delete(clientId); return null; }
      return promisify(store.delete(clientId));
    });
  }

  /** This user's records, oldest first. */
  async all() {
    const rows = await this._tx('readonly', (store) => (store ? promisify(store.getAll()) : [...this._memory.values()]));
    return rows.filter((r) => r.userId === this.userId).sort((a, b) => a.createdAt - b.createdAt);
  }
}
