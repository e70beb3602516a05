// Compiled (never run) by `tsc -p tsconfig.json`: the README's example,
// typed against index.d.ts, so a declaration that no longer fits the way
// an application uses the client fails the package's test.
import { ParleyClient, ApiError, devSignIn, TRANSPORTS, type Message, type StreamEvent, type Transport } from '@parleychat/client';

export async function example(baseUrl: string): Promise<void> {
  const { token, user } = await devSignIn('alice', 'Alice', { baseUrl });
  const client = new ParleyClient({
    token,
    baseUrl,
    transport: 'auto',
    onResync: async () => {
      for (const c of await client.listConversations()) client.setFloor(c.id, c.last_seq);
    },
  });
  client.addEventListener('event', (e) => {
    const ev: StreamEvent = e.detail;
    if (ev.type === 'message.created' && ev.message) {
      const m: Message = ev.message;
      console.log(user.name, 'sees', m.sender_id, m.text, ev.cursor);
    }
  });
  client.addEventListener('status', (e) => console.log(e.detail.state, e.detail.transport));
  client.addEventListener('send-failed', (e) => console.log(e.detail.error.code, e.detail.error.retryable));
  client.start();

  const conv = await client.createConversation({ kind: 'group', title: 'launch', members: ['bob'] });
  const sent = await client.send(conv.id, { text: 'hello' });
  if (sent) await client.markRead(conv.id, sent.seq);
  const page = await client.listMessages(conv.id, { limit: 20 });
  const more: boolean = page.has_more;
  const found = await client.search({ q: 'hello', conversationId: conv.id });
  const next: string | null = found.next_page_token;
  const t: Transport = TRANSPORTS[1];
  client.setTransport(t);
  try {
    await client.getConversation('cnv_missing');
  } catch (err) {
    if (err instanceof ApiError && err.code === 'not_found') console.log(err.requestId, more, next);
  }
  client.stop();
}
