// "Notify me": notifications of new messages while the user is away.
//
// When the server has a VAPID key (GET /v1/push/vapid-public-key), the
// browser subscribes to Web Push through the service worker /sw.js and
// registers the subscription as a device (PUT /v1/devices/{id}); the
// server then pushes when this user has no connection open anywhere, even
// with every tab closed. Otherwise the page itself shows a notification
// (Notification API) for messages that arrive while its tab is hidden.
//
// The only hook into the rest of the client is setupNotify(client, me),
// called once the chat starts; the button goes into the settings panel.

import { h } from './dom.js';

const DEVICE_KEY = 'parley.push-device';
const MODE_KEY = 'parley.notify';

function b64urlToBytes(s) {
  const pad = '='.repeat((4 - (s.length % 4)) % 4);
  const raw = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    const r = new Uint8Array(9);
    crypto.getRandomValues(r);
    id = 'web-' + Array.from(r, (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

/** The server's VAPID public key, or null when Web Push is not configured. */
async function vapidKey(client) {
  try {
    const r = await client.request('GET', '/v1/push/vapid-public-key');
    return r && r.key ? r.key : null;
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

async function subscribeWebPush(client, key) {
  const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  await navigator.serviceWorker.ready;
  let sub = await reg.pushManager.getSubscription();
  if (!sub) {
    sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlToBytes(key) });
  }
  const { endpoint, keys } = sub.toJSON();
  await client.request('PUT', `/v1/devices/${deviceId()}`, { kind: 'webpush', endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
}

async function unsubscribeWebPush(client) {
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg && (await reg.pushManager.getSubscription());
  if (sub) await sub.unsubscribe();
  try {
    await client.request('DELETE', `/v1/devices/${deviceId()}`);
  } catch (err) {
    if (err.status !== 404) throw err;
  }
}

/** Adds the "Notify me" button and restores the choice made before. */
export function setupNotify(client, me) {
  const panel = document.querySelector('.settings-panel');
  if (!panel) return;
  const status = h('p', { class: 'muted notify-status', role: 'status' });
  const button = h('button', { type: 'button', id: 'notify-btn' }, 'Notify me');
  const box = h('div', { class: 'notify' }, button, status);
  panel.insertBefore(box, document.querySelector('#signout-btn'));

  let mode = localStorage.getItem(MODE_KEY) || 'off'; // off | push | page
  const show = () => {
    button.textContent = mode === 'off' ? 'Notify me' : 'Stop notifying';
    button.setAttribute('aria-pressed', String(mode !== 'off'));
    status.textContent = mode === 'push' ? 'Notifications on, also when Parley is closed.'
      : mode === 'page' ? 'Notifications on while this tab is open in the background.' : '';
  };

  // The page's own notifications (mode "page"): messages from others that
  // arrive while the tab is hidden.
  client.addEventListener('event', (e) => {
    const ev = e.detail;
    if (mode !== 'page' || ev.type !== 'message.created' || !ev.message) return;
    if (ev.message.sender_id === me.id || document.visibilityState !== 'hidden') return;
    if (Notification.permission !== 'granted') return;
    const n = new Notification('New message', { body: ev.message.text || 'Attachment', tag: ev.conversation_id });
    n.onclick = () => {
      // Open the conversation the way a link inside the client would.
      window.focus();
      history.pushState({ cid: ev.conversation_id }, '', `/c/${encodeURIComponent(ev.conversation_id)}`);
      window.dispatchEvent(new PopStateEvent('popstate', { state: { cid: ev.conversation_id } }));
      n.close();
    };
  });

  if (!('Notification' in window)) {
    button.disabled = true;
    status.textContent = 'This browser cannot show notifications.';
    return;
  }
  if (Notification.permission !== 'granted') mode = 'off';
  show();
  if (mode === 'push' && 'serviceWorker' in navigator) {
    // Register again on every start (a cheap 200): it brings back a
    // device the server removed after its push service said it was gone,
    // and a subscription the browser renewed meanwhile.
    vapidKey(client).then((key) => (key ? subscribeWebPush(client, key) : null)).catch(() => {});
  }

  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      if (mode !== 'off') {
        if (mode === 'push') await unsubscribeWebPush(client);
        mode = 'off';
      } else {
        const perm = await Notification.requestPermission();
        if (perm !== 'granted') {
          status.textContent = 'Notifications are blocked for this site.';
          return;
        }
        const key = 'serviceWorker' in navigator && 'PushManager' in window ? await vapidKey(client) : null;
        if (key) {
          await subscribeWebPush(client, key);
          mode = 'push';
        } else {
          mode = 'page';
        }
      }
      localStorage.setItem(MODE_KEY, mode);
      show();
    } catch (err) {
      status.textContent = `Could not change notifications: ${err.message || err}`;
    } finally {
      button.disabled = false;
    }
  });
}
