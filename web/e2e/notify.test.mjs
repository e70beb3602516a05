// Browser test of "Notify me" on a server without Web Push (no VAPID key):
// the page itself notifies of messages that arrive while its tab is
// hidden. The Notification constructor is recorded by an init script,
// since a headless browser shows nothing one could look at.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, apiUser } from './lib/server.mjs';
import { launchBrowser, connection, waitForText, eventually } from './lib/ui.mjs';

const T = { timeout: 120_000 };

describe('Notify me', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  }, { timeout: 600_000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('without a VAPID key, notifies of others\' messages only while the tab is hidden', T, async () => {
    const context = await browser.newContext({ baseURL: server.base });
    await context.addInitScript(() => {
      window.__notes = [];
      window.__hidden = false;
      class RecordedNotification {
        constructor(title, opts = {}) { window.__notes.push({ title, body: opts.body, tag: opts.tag }); }
        close() {}
        static get permission() { return 'granted'; }
        static requestPermission() { return Promise.resolve('granted'); }
      }
      window.Notification = RecordedNotification;
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible') });
    });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    await page.goto('/');
    await page.getByLabel('User id').fill('nora');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await waitForText(connection(page), /^Connected · /, { timeout: 20_000 });

    await page.locator('#settings > summary').click();
    await page.getByRole('button', { name: 'Notify me' }).click();
    await waitForText(page.locator('.notify-status'), 'while this tab is open in the background');
    assert.equal(await page.getByRole('button', { name: 'Stop notifying' }).count(), 1);

    const bob = await apiUser(server.base, 'bob-notify');
    const conv = await bob.createGroup('Walks', ['nora']);
    await page.evaluate(() => { window.__hidden = true; });
    await bob.send(conv.id, 'are you coming?', 'n1');
    await eventually(async () => (await page.evaluate(() => window.__notes.length)) === 1, { what: 'one notification' });
    const [note] = await page.evaluate(() => window.__notes);
    assert.equal(note.body, 'are you coming?');
    assert.equal(note.tag, conv.id);

    // Visible again: no notification; nor for the user's own messages.
    await page.evaluate(() => { window.__hidden = false; });
    await bob.send(conv.id, 'never mind', 'n2');
    await page.evaluate(() => { window.__hidden = true; });
    const nora = await apiUser(server.base, 'nora');
    await nora.send(conv.id, 'my own', 'n3');
    await bob.send(conv.id, 'last one', 'n4');
    await eventually(async () => (await page.evaluate(() => window.__notes.length)) >= 2, { what: 'the second notification' });
    const bodies = await page.evaluate(() => window.__notes.map((n) => n.body));
    assert.deepEqual(bodies, ['are you coming?', 'last one']);
    assert.deepEqual(problems, []);
    await context.close();
  });
});
