// Browser tests of "Notify me".
//
// On a server without Web Push (no VAPID key), the page itself notifies of
// messages that arrive while its tab is hidden. The Notification
// constructor is recorded by an init script, since a headless browser
// shows nothing one could look at.
//
// On a server with a VAPID key, the page subscribes through the service
// worker and registers the subscription as a device; the worker shows the
// pushes. Headless Chromium has no push service, so the page's PushManager
// is a stub that returns a subscription whose keys this test made, and the
// push is delivered to the real service worker through the Chrome DevTools
// Protocol (ServiceWorker.deliverPushMessage, the DevTools "Push" button).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
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

/** A P-256 key pair as Web Push writes it: the public key uncompressed
 * (65 bytes) and the private key (32 bytes), both base64url. */
function p256() {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'jwk' });
  const pub = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  return { publicKey: pub.toString('base64url'), privateKey: jwk.d };
}

describe('Notify me with Web Push', () => {
  const vapid = p256();
  let server;
  let browser;

  before(async () => {
    server = await startServer({ args: ['--push.vapid-public-key', vapid.publicKey, '--push.vapid-private-key', vapid.privateKey, '--push.allow-loopback'] });
    browser = await launchBrowser();
  }, { timeout: 600_000 });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('subscribes through the service worker, registers the device, and the worker shows a push', T, async () => {
    const context = await browser.newContext({ baseURL: server.base });
    await context.grantPermissions(['notifications'], { origin: server.base });
    // The subscription a push service would give: an endpoint (on loopback,
    // where nothing answers) and the user agent's keys.
    const sub = {
      endpoint: `https://127.0.0.1:9/push/${randomBytes(8).toString('hex')}`,
      keys: { p256dh: p256().publicKey, auth: randomBytes(16).toString('base64url') },
    };
    await context.addInitScript((sub) => {
      window.__subscribed = [];
      let current = null;
      const made = {
        endpoint: sub.endpoint,
        expirationTime: null,
        toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
        unsubscribe: async () => { current = null; window.__unsubscribed = true; return true; },
      };
      PushManager.prototype.getSubscription = async function () { return current; };
      PushManager.prototype.subscribe = async function (opts) {
        const key = new Uint8Array(opts.applicationServerKey);
        window.__subscribed.push({
          userVisibleOnly: opts.userVisibleOnly,
          key: btoa(String.fromCharCode(...key)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
        });
        current = made;
        return made;
      };
    }, sub);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    const deviceCalls = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname.startsWith('/v1/devices/')) deviceCalls.push({ method: req.method(), body: req.postData() });
    });
    await page.goto('/');
    await page.getByLabel('User id').fill('olga');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await waitForText(connection(page), /^Connected · /, { timeout: 20_000 });

    await page.locator('#settings > summary').click();
    await page.getByRole('button', { name: 'Notify me' }).click();
    await waitForText(page.locator('.notify-status'), 'also when Parley is closed');

    // The page subscribed with the server's VAPID key and registered the
    // subscription as its device; the server has it.
    assert.deepEqual(await page.evaluate(() => window.__subscribed), [{ userVisibleOnly: true, key: vapid.publicKey }]);
    const put = deviceCalls.find((c) => c.method === 'PUT');
    assert.ok(put, `no PUT /v1/devices/…: ${JSON.stringify(deviceCalls)}`);
    assert.deepEqual(JSON.parse(put.body), { kind: 'webpush', endpoint: sub.endpoint, keys: sub.keys });
    const olga = await apiUser(server.base, 'olga');
    const { devices } = await olga.call('GET', '/v1/devices');
    assert.equal(devices.length, 1);
    assert.equal(devices[0].kind, 'webpush');
    assert.equal(devices[0].endpoint, sub.endpoint);

    // The service worker /sw.js is registered and active; a push delivered
    // to it is shown as a notification, one per conversation.
    const cdp = await context.newCDPSession(page);
    const registrations = new Map();
    const versions = new Map();
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
      for (const r of e.registrations) registrations.set(r.registrationId, r);
    });
    cdp.on('ServiceWorker.workerVersionUpdated', (e) => {
      for (const v of e.versions) versions.set(v.versionId, v);
    });
    await cdp.send('ServiceWorker.enable');
    const reg = await eventually(() => [...registrations.values()].find((r) => r.scopeURL === server.base + '/' && !r.isDeleted) || false,
      { what: 'the service worker registration' });
    // A push delivered to a worker still installing is lost: wait until
    // its version is activated, as the page sees it too.
    await eventually(() => [...versions.values()].some((v) => v.registrationId === reg.registrationId && v.status === 'activated'),
      { what: 'the service worker to be activated' });
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    const push = (payload) => cdp.send('ServiceWorker.deliverPushMessage', { origin: server.base, registrationId: reg.registrationId, data: typeof payload === 'string' ? payload : JSON.stringify(payload) });
    const notifications = () => page.evaluate(async () => {
      const r = await navigator.serviceWorker.ready;
      return (await r.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
    });

    // Headless Chromium now and then drops a push delivered through the
    // DevTools protocol (seen in about one run of three on a busy
    // machine, at the first push and at later ones), so each step
    // delivers its pushes again every 3 s until what they show is there:
    // a message push delivered twice replaces its notification (its tag),
    // never adds one, and the others show nothing either way.
    const pushUntil = (payloads, shown, what) => eventually(async () => {
      for (const p of payloads) await push(p);
      return eventually(shown, { timeout: 3_000, what });
    }, { timeout: 30_000, what });

    await pushUntil([{ type: 'message', conversation_id: 'cnv_walks', seq: 3, sender_id: 'bob', sender_name: 'Bob' }],
      async () => (await notifications()).length === 1, 'the push\'s notification');
    assert.deepEqual(await notifications(), [{ title: 'Bob', body: 'New message', tag: 'cnv_walks', data: { url: '/c/cnv_walks' } }]);

    // A newer push of the same conversation replaces it (its tag), with
    // the preview when the server sends one; another conversation adds one.
    await pushUntil([
      { type: 'message', conversation_id: 'cnv_walks', seq: 4, sender_id: 'bob', sender_name: 'Bob', preview: 'are you coming?' },
      { type: 'message', conversation_id: 'cnv/other', seq: 1, sender_id: 'carol' },
    ], async () => (await notifications()).length === 2 && (await notifications()).some((n) => n.body === 'are you coming?'),
    'the replaced and the added notification');
    const shown = (await notifications()).sort((a, b) => (a.tag < b.tag ? -1 : 1));
    assert.deepEqual(shown, [
      { title: 'carol', body: 'New message', tag: 'cnv/other', data: { url: '/c/cnv%2Fother' } },
      { title: 'Bob', body: 'are you coming?', tag: 'cnv_walks', data: { url: '/c/cnv_walks' } },
    ]);
    // What is not a message push shows nothing: after two such pushes and
    // one more message, there is one notification more.
    await pushUntil([{ type: 'something-else', conversation_id: 'cnv_x' }, 'not json at all', { type: 'message', conversation_id: 'cnv_last', seq: 1, sender_id: 'dan' }],
      async () => (await notifications()).some((n) => n.tag === 'cnv_last'), 'the last push\'s notification');
    assert.deepEqual((await notifications()).map((n) => n.tag).sort(), ['cnv/other', 'cnv_last', 'cnv_walks']);

    // Stop notifying: the subscription is dropped and the device deleted.
    await page.getByRole('button', { name: 'Stop notifying' }).click();
    await waitForText(page.getByRole('button', { name: 'Notify me' }), 'Notify me');
    assert.equal(await page.evaluate(() => window.__unsubscribed), true);
    assert.deepEqual((await olga.call('GET', '/v1/devices')).devices, []);
    assert.deepEqual(problems, []);
    await context.close();
  });
});
