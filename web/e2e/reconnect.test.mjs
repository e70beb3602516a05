// Browser tests of what survives an outage: a server restart during a chat
// (the client steps back up to WebSocket), and sends made while the server
// cannot be reached (the durable outbox in IndexedDB).
// Run: bash setup.sh && npm test   (from web/e2e)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import {
  launchBrowser, signIn, createGroup, openConversation, send, messageTexts,
  messageList, connection, waitForText, eventually, screenshot, sleep,
} from './lib/ui.mjs';

const T = { timeout: 240_000 };

describe('Parley web client through outages', () => {
  let server;
  let browser;
  const contexts = [];

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  }, { timeout: 600_000 });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  async function person(userId, opts) {
    const p = await signIn(browser, server.base, userId, opts);
    contexts.push(p.context);
    return p;
  }

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

    await server.restart({ downMs: 4000 });
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
});
