// Browser tests of what survives an outage: a server restart during a chat
// (the client steps back up to WebSocket), and sends made while the server
// cannot be reached (the durable outbox in IndexedDB).
// Run: bash setup.sh && npm test   (from web/e2e)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiUser } from './lib/server.mjs';
import { useServerAndBrowser } from './lib/suite.mjs';
import {
  createGroup, openConversation, send, messageTexts,
  messageList, connection, waitForText, eventually, screenshot, sleep,
} from './lib/ui.mjs';

const T = { timeout: 240_000 };

describe('Parley web client through outages', () => {
  const env = useServerAndBrowser();
  const { person } = env;

  /** Records every text the Connection status shows. */
  async function watchStatus(page) {
    await page.evaluate(() => {
      const el = document.getElementById('connection');
      window.__statusLog = [el.textContent];
      new MutationObserver(() => window.__statusLog.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    return () => page.evaluate(() => window.__statusLog);
  }

  test('after a server restart during a chat the client is back on WebSocket within 30 s', T, async () => {
    const alice = await person('alice-restart', { name: 'Alice Liddell' });
    const bob = await person('bob-restart', { name: 'Bob Builder' });
    await createGroup(alice.page, 'Rolling deploy', [bob.userId]);
    await send(alice.page, 'before the restart');
    await openConversation(bob.page, 'Rolling deploy');
    await waitForText(messageList(bob.page), 'before the restart');
    for (const p of [alice, bob]) await waitForText(connection(p.page), 'Connected · WebSocket');
    const aliceLog = await watchStatus(alice.page);

    await env.server.restart({ downMs: 4000 });
    const back = Date.now();
    for (const p of [alice, bob]) {
      await waitForText(connection(p.page), 'Connected · WebSocket', { timeout: 30_000 });
    }
    const took = Date.now() - back;
    const seen = await aliceLog();
    console.log(`back on WebSocket ${took} ms after the restart; statuses: ${[...new Set(seen)].join(' | ')}`);
    assert.ok(seen.some((t) => !t.startsWith('Connected · WebSocket')), 'the restart was not noticed');
    await screenshot(alice.page, '30-after-restart.png');

    // The chat goes on, live, on both sides.
    await send(bob.page, 'after the restart');
    await waitForText(messageList(alice.page), 'after the restart', { timeout: 15_000 });
    // And the connection stays on WebSocket.
    await sleep(1000);
    assert.equal(await connection(alice.page).textContent(), 'Connected · WebSocket');
    assert.deepEqual(await messageTexts(alice.page), ['before the restart', 'after the restart']);
  });
  test('a send made offline survives a reload and arrives exactly once (durable outbox)', T, async () => {
    const alice = await person('alice-outbox', { name: 'Alice Liddell' });
    const bob = await person('bob-outbox', { name: 'Bob Builder' });
    await createGroup(alice.page, 'Outbox', [bob.userId]);
    await send(alice.page, 'first');
    await openConversation(bob.page, 'Outbox');
    await waitForText(messageList(bob.page), 'first');
    const posts = '**/v1/conversations/*/messages';
    const count = async (page, text) => (await messageTexts(page)).filter((t) => t === text).length;
    const outbox = (page) => page.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('parley-outbox', 1);
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const get = req.result.transaction('sends').objectStore('sends').getAll();
        get.onsuccess = () => { resolve(get.result.map((r) => r.text)); req.result.close(); };
      };
    }));
    const waiting = messageList(alice.page).locator('li.pending.queued');

    // 1. The server never gets it (the network fails), and the page is reloaded.
    await alice.page.route(posts, (r) => (r.request().method() === 'POST' ? r.abort('internetdisconnected') : r.fallback()));
    await send(alice.page, 'written while the network was down');
    await waitForText(waiting, 'Waiting to send', { timeout: 30_000 });
    await waitForText(waiting, 'written while the network was down');
    assert.deepEqual(await outbox(alice.page), ['written while the network was down']);
    await screenshot(alice.page, '31-outbox-waiting.png');
    await alice.page.unroute(posts);
    await alice.page.reload();
    await waitForText(connection(alice.page), /^Connected · /, { timeout: 20_000 });
    await waitForText(messageList(bob.page), 'written while the network was down', { timeout: 20_000 });
    await openConversation(alice.page, 'Outbox');
    await eventually(async () => assert.equal(await count(alice.page, 'written while the network was down'), 1), { what: 'alice sees it once' });
    await eventually(async () => assert.deepEqual(await outbox(alice.page), []), { what: 'an empty outbox' });

    // 2. A send the server already stored (its answer was lost on the way)
    // and that still waits in the outbox when the page reloads: the retry
    // carries the same client_id, and the server's dedup keeps it once.
    const cid = decodeURIComponent(new URL(alice.page.url()).pathname.split('/').pop());
    await (await apiUser(env.server.base, alice.userId)).send(cid, 'stored but the answer was lost', 'c-lost-answer');
    await alice.page.evaluate(({ cid, me }) => new Promise((resolve, reject) => {
      const req = indexedDB.open('parley-outbox', 1);
      req.onsuccess = () => {
        const tx = req.result.transaction('sends', 'readwrite');
        tx.objectStore('sends').put({
          clientId: 'c-lost-answer', userId: me, conversationId: cid, text: 'stored but the answer was lost',
          attachments: [], attachmentInfo: [], replyTo: null, createdAt: Date.now(), status: 'sending',
        });
        tx.oncomplete = () => { req.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
    }), { cid, me: alice.userId });
    let retried = 0;
    alice.page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/messages') && (r.postData() || '').includes('c-lost-answer')) retried++; });
    await alice.page.reload();
    await waitForText(connection(alice.page), /^Connected · /, { timeout: 20_000 });
    await eventually(async () => assert.deepEqual(await outbox(alice.page), []), { what: 'the outbox emptied by the retry' });
    assert.equal(retried, 1, 'the outbox did not send it again after the reload');
    await openConversation(alice.page, 'Outbox');
    await eventually(async () => assert.equal(await count(alice.page, 'stored but the answer was lost'), 1), { what: 'alice sees it once' });

    // 3. Offline for real: the composer says so, a send waits, Discard drops
    // one, and the other goes out by itself on reconnect.
    await alice.context.setOffline(true);
    await waitForText(alice.page.locator('#composer-status'), 'You are offline', { timeout: 15_000 });
    await send(alice.page, 'to be discarded');
    await send(alice.page, 'sent on reconnect');
    await eventually(async () => assert.equal(await waiting.count(), 2), { timeout: 15_000, what: 'two waiting sends' });
    await screenshot(alice.page, '32-offline-composer.png');
    await waiting.filter({ hasText: 'to be discarded' }).getByRole('button', { name: 'Discard', exact: true }).click();
    await alice.context.setOffline(false);
    await waitForText(messageList(bob.page), 'sent on reconnect', { timeout: 30_000 });
    await eventually(async () => assert.equal(await messageList(alice.page).locator('li.pending').count(), 0), { what: 'nothing pending' });
    assert.ok(await alice.page.locator('#composer-status').isHidden(), 'the composer still says offline');

    await sleep(1500); // let any duplicate arrive
    const want = ['first', 'written while the network was down', 'stored but the answer was lost', 'sent on reconnect'];
    for (const p of [alice, bob]) {
      await eventually(async () => assert.deepEqual(await messageTexts(p.page), want), { what: `${p.userId}'s messages, each once` });
    }
    assert.deepEqual(await outbox(alice.page), []);
  });
});
