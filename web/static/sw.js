// Parley's service worker: shows the Web Push notifications the server
// sends while this user has no connection open (see js/ui/notify.js).
// A push is {"type":"message","conversation_id","seq","sender_id",
// "sender_name"} plus "preview" when the server enables previews; it
// never needs the network to be shown.

self.addEventListener('push', (event) => {
  let p = {};
  try { p = event.data ? event.data.json() : {}; } catch { p = {}; }
  if (p.type !== 'message') return;
  const title = p.sender_name || p.sender_id || 'Parley';
  event.waitUntil(self.registration.showNotification(title, {
    body: p.preview || 'New message',
    // One notification per conversation: a newer push replaces it.
    tag: p.conversation_id,
    renotify: true,
    data: { url: '/c/' + encodeURIComponent(p.conversation_id || '') },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || '/';
  event.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of wins) {
      if (new URL(w.url).origin === self.location.origin) {
        await w.focus();
        return w.navigate(url);
      }
    }
    return self.clients.openWindow(url);
  })());
});
