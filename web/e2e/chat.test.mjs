// Browser end-to-end tests of the web client against a real `parley serve`.
// Run: bash setup.sh && npm test   (from web/e2e)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiUser } from './lib/server.mjs';
import { useServerAndBrowser } from './lib/suite.mjs';
import { makePng } from './lib/png.mjs';
import {
  setTransport, createGroup, openConversation, conversationButton, send, messageTexts,
  messageList, connection, messageBox, waitForText, eventually, screenshot, sleep, TRANSPORT_LABELS,
} from './lib/ui.mjs';

const T = { timeout: 240_000 };

describe('Parley web client', () => {
  const env = useServerAndBrowser();
  const { contexts, person } = env;

  function noProblems(...people) {
    for (const p of people) assert.deepEqual(p.problems, [], `${p.userId}: script errors or CSP violations`);
  }

  test('sign-in screen, chat screen and dialogs render in light, dark and phone layouts', T, async () => {
    const ctx = await env.browser.newContext({ baseURL: env.server.base, viewport: { width: 1280, height: 800 } });
    contexts.push(ctx);
    const page = await ctx.newPage();
    await page.goto('/');
    await page.getByLabel('User id').waitFor();
    await screenshot(page, '01-signin-light.png');

    const alice = await person('alice-screens', { colorScheme: 'light' });
    const seed = await apiUser(env.server.base, 'alice-screens');
    const conv = await seed.createGroup('Design review', ['bob-screens', 'carol-screens']);
    await apiUser(env.server.base, 'bob-screens').then((b) => b.send(conv.id, 'Morning! Did everyone see the new mock-ups?', 'seed-1'));
    await seed.send(conv.id, 'Yes — they look great. One question about the sidebar width.', 'seed-2');
    await apiUser(env.server.base, 'carol-screens').then((c) => c.send(conv.id, 'I left comments at https://example.com/review 👍', 'seed-3'));
    await openConversation(alice.page, 'Design review');
    await waitForText(messageList(alice.page), 'I left comments');
    await screenshot(alice.page, '02-chat-desktop-light.png');

    // Who am I, and sign out, live in the settings menu.
    await alice.page.locator('#settings > summary').click();
    await waitForText(alice.page.locator('.settings-panel'), 'Signed in as alice-screens');
    await screenshot(alice.page, '03-settings-menu.png');
    await alice.page.keyboard.press('Escape');

    await alice.page.getByRole('button', { name: 'New conversation', exact: true }).click();
    await screenshot(alice.page, '04-new-conversation-dialog.png');
    await alice.page.keyboard.press('Escape');
    await alice.page.getByRole('button', { name: 'Members', exact: true }).click();
    await screenshot(alice.page, '05-members-dialog.png');
    await alice.page.keyboard.press('Escape');

    const dark = await person('alice-screens', { colorScheme: 'dark' });
    await openConversation(dark.page, 'Design review');
    await waitForText(messageList(dark.page), 'I left comments');
    await screenshot(dark.page, '06-chat-desktop-dark.png');

    const phone = await person('alice-screens', { viewport: { width: 375, height: 740 } });
    await conversationButton(phone.page, 'Design review').waitFor();
    await screenshot(phone.page, '07-phone-conversations.png');
    await openConversation(phone.page, 'Design review');
    await waitForText(messageList(phone.page), 'I left comments');
    await screenshot(phone.page, '08-phone-chat.png');
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `phone layout scrolls sideways by ${overflow}px`);
    // Back to the list on a phone.
    await phone.page.getByRole('button', { name: 'Back to conversations' }).click();
    await conversationButton(phone.page, 'Design review').waitFor();

    // Sign out returns to the sign-in screen and forgets the token.
    await alice.page.locator('#settings > summary').click();
    await alice.page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await alice.page.getByLabel('User id').waitFor();
    assert.equal(await alice.page.evaluate(() => localStorage.getItem('parley.token')), null);
    noProblems(dark, phone);
  });

  test('display names everywhere, a name change reaches others live, and realtime URLs carry tickets', T, async () => {
    const alice = await person('alice-names', { name: 'Alice Liddell' });
    const bob = await person('bob-names', { name: 'Bob Builder' });
    await createGroup(alice.page, 'Names', [bob.userId]);
    await conversationButton(bob.page, 'Names').waitFor({ timeout: 15_000 });
    await openConversation(bob.page, 'Names');
    await send(bob.page, 'Hello from Bob');
    // Messages, typing and "Seen by" show names, not ids.
    await waitForText(messageList(alice.page).locator('.sender').last(), 'Bob Builder');
    await waitForText(messageList(bob.page).locator('.sender').last(), 'Bob Builder (you)');
    await messageBox(alice.page).pressSequentially('Hi Bo', { delay: 20 });
    await waitForText(bob.page.locator('#typing'), 'Alice Liddell is typing');
    await messageBox(alice.page).fill('Hi Bob');
    await messageBox(alice.page).press('Enter');
    await waitForText(messageList(bob.page), 'Hi Bob');
    await waitForText(messageList(alice.page), 'Seen by Bob Builder');
    // The member list too.
    await alice.page.getByRole('button', { name: 'Members', exact: true }).click();
    await waitForText(alice.page.locator('#members-list'), 'Bob Builder');
    await waitForText(alice.page.locator('#members-list'), 'Alice Liddell (you)');
    await alice.page.keyboard.press('Escape');

    // Bob renames himself; Alice sees it without reloading.
    await bob.page.locator('#settings > summary').click();
    await bob.page.getByLabel('Display name', { exact: true }).fill('Robert the Builder');
    await bob.page.getByRole('button', { name: 'Save name', exact: true }).click();
    await waitForText(bob.page.locator('#me-name'), 'Robert the Builder');
    await bob.page.keyboard.press('Escape');
    await waitForText(messageList(alice.page).locator('.sender').first(), 'Robert the Builder');
    await waitForText(messageList(alice.page), 'Seen by Robert the Builder');
    await screenshot(alice.page, '20-names.png');
    // An empty name is refused in place.
    await bob.page.locator('#settings > summary').click();
    await bob.page.getByLabel('Display name', { exact: true }).fill('   ');
    await bob.page.getByRole('button', { name: 'Save name', exact: true }).click();
    await waitForText(bob.page.locator('#name-error'), 'A name has 1 to 64 characters.');
    await bob.page.keyboard.press('Escape');

    // A reload keeps the set name (the server stores it).
    await bob.page.reload();
    await waitForText(connection(bob.page), /^Connected · /, { timeout: 20_000 });
    await waitForText(bob.page.locator('#me-chip'), 'Robert the Builder');

    for (const p of [alice, bob]) {
      assert.ok(p.realtimeUrls.length > 0, `${p.userId} opened no realtime connection`);
      for (const u of p.realtimeUrls) {
        assert.ok(!u.includes('access_token'), `${p.userId}: token in a realtime URL`);
        assert.ok(u.includes('ticket='), `${p.userId}: no ticket in ${u.replace(/ticket=[^&]*/, 'ticket=…')}`);
      }
    }
    noProblems(alice, bob);
  });

  for (const transport of ['websocket', 'sse', 'longpoll']) {
    const label = TRANSPORT_LABELS[transport];

    test(`two people chat in real time over ${label}`, T, async () => {
      const alice = await person(`alice-${transport}`, { transport });
      const bob = await person(`bob-${transport}`, { transport });
      const title = `Chat over ${label}`;

      await createGroup(alice.page, title, [bob.userId]);
      // Bob learns of the new conversation live and sees an unread count.
      await send(alice.page, `Hello bob, this is ${label}`);
      const bobItem = conversationButton(bob.page, title);
      await bobItem.waitFor({ timeout: 15_000 });
      await waitForText(bobItem, '1 unread');
      await openConversation(bob.page, title);
      await waitForText(messageList(bob.page), `Hello bob, this is ${label}`);

      // Live both ways; the typing indicator shows while bob types.
      await messageBox(bob.page).pressSequentially('Hi al', { delay: 20 });
      await waitForText(alice.page.locator('#typing'), `${bob.userId} is typing`);
      await messageBox(bob.page).fill('Hi alice, loud and clear');
      await messageBox(bob.page).press('Enter');
      await waitForText(messageList(alice.page), 'Hi alice, loud and clear');
      for (let i = 1; i <= 3; i++) await send(alice.page, `${label} burst ${i}`);
      await waitForText(messageList(bob.page), `${label} burst 3`);

      // Exactly once each, in order, on both sides (optimistic sends deduplicated).
      const want = [`Hello bob, this is ${label}`, 'Hi alice, loud and clear', `${label} burst 1`, `${label} burst 2`, `${label} burst 3`];
      for (const p of [alice, bob]) {
        await eventually(async () => assert.deepEqual(await messageTexts(p.page), want), { what: `${p.userId}'s messages` });
        assert.equal(await messageList(p.page).locator('li.pending').count(), 0);
      }
      // Read markers: bob has read everything, alice sees it.
      await waitForText(messageList(alice.page), `Seen by ${bob.userId}`);
      assert.match(await connection(alice.page).textContent(), new RegExp(`^Connected · ${label}$`));
      if (transport === 'websocket') await screenshot(alice.page, '09-chat-realtime.png');
      noProblems(alice, bob);
    });

    test(`a person offline during 20 messages over ${label} gets each exactly once, in order`, T, async () => {
      const alice = await person(`alice-off-${transport}`, { transport });
      const bob = await person(`bob-off-${transport}`, { transport });
      const title = `Offline over ${label}`;
      await createGroup(alice.page, title, [bob.userId]);
      await send(alice.page, 'before');
      await openConversation(bob.page, title);
      await waitForText(messageList(bob.page), 'before');

      await bob.context.setOffline(true);
      await waitForText(connection(bob.page), /Offline|Reconnecting/, { timeout: 10_000 });
      const sent = [];
      for (let i = 1; i <= 20; i++) {
        sent.push(`missed ${i}`);
        await send(alice.page, `missed ${i}`);
      }
      await waitForText(messageList(alice.page), 'missed 20');
      await sleep(500);
      assert.ok(!(await messageTexts(bob.page)).includes('missed 1'), 'bob got a message while offline');
      await bob.context.setOffline(false);

      await waitForText(connection(bob.page), `Connected · ${label}`, { timeout: 30_000 });
      await waitForText(messageList(bob.page), 'missed 20', { timeout: 30_000 });
      await sleep(1500); // let any duplicate arrive
      const got = (await messageTexts(bob.page)).filter((t) => t.startsWith('missed '));
      assert.deepEqual(got, sent);
      noProblems(alice, bob);
    });
  }

  test('reply, react, edit, delete, rename, and a send that fails offers Retry', T, async () => {
    const alice = await person('alice-actions');
    const bob = await person('bob-actions');
    let nativeDialogs = 0;
    alice.page.on('dialog', (d) => { nativeDialogs++; d.accept(); });
    await createGroup(alice.page, 'Actions', [bob.userId]);
    await send(alice.page, 'original text');
    await openConversation(bob.page, 'Actions');
    // A message by its own text (a reply's quote holds the text too).
    const item = (page, text) => messageList(page).locator('li.msg').filter({ has: page.locator('.msg-text > p').getByText(text, { exact: true }) });
    const bobMsg = item(bob.page, 'original text');
    await bobMsg.waitFor();

    // Reply with a quote.
    await bobMsg.hover();
    await bobMsg.getByRole('button', { name: 'Reply', exact: true }).click();
    await waitForText(bob.page.locator('#reply-preview'), 'original text');
    await messageBox(bob.page).fill('a reply');
    await messageBox(bob.page).press('Enter');
    const aliceReply = item(alice.page, 'a reply');
    await aliceReply.waitFor();
    await waitForText(aliceReply.locator('blockquote'), 'original text');

    // React.
    await bobMsg.hover();
    await bobMsg.getByRole('button', { name: 'React', exact: true }).click();
    await bobMsg.getByRole('button', { name: 'React with 👍' }).click();
    const aliceMsg = item(alice.page, 'original text');
    await waitForText(aliceMsg.locator('.reactions'), '👍 1');

    // Edit, then delete, her own message.
    await aliceMsg.hover();
    await aliceMsg.getByRole('button', { name: 'Edit', exact: true }).click();
    await alice.page.getByRole('textbox', { name: 'Edit message' }).fill('edited text');
    await alice.page.getByRole('textbox', { name: 'Edit message' }).press('Enter');
    const bobEdited = item(bob.page, 'edited text');
    await waitForText(bobEdited, '(edited)');
    await screenshot(bob.page, '13-reply-react-edit.png');
    const aliceEdited = item(alice.page, 'edited text');
    await aliceEdited.hover();
    await aliceEdited.getByRole('button', { name: 'Delete', exact: true }).click();
    // An in-app confirmation, not the browser's confirm(): Cancel keeps it.
    const confirmDlg = alice.page.getByRole('alertdialog', { name: 'Delete this message?' });
    await confirmDlg.waitFor();
    await screenshot(alice.page, '15-delete-confirm.png');
    await confirmDlg.getByRole('button', { name: 'Cancel', exact: true }).click();
    await confirmDlg.waitFor({ state: 'detached' });
    assert.ok((await messageTexts(alice.page)).includes('edited text'), 'Cancel deleted the message');
    await aliceEdited.hover();
    await aliceEdited.getByRole('button', { name: 'Delete', exact: true }).click();
    await confirmDlg.getByRole('button', { name: 'Delete', exact: true }).click();
    await waitForText(messageList(bob.page), 'This message was deleted.');
    assert.equal(nativeDialogs, 0, 'the browser\'s confirm() was used');
    assert.ok(!(await messageTexts(bob.page)).includes('edited text'));

    // Rename reaches the other person live.
    await alice.page.getByRole('button', { name: 'Rename', exact: true }).click();
    await alice.page.getByRole('dialog').getByLabel('Title', { exact: true }).fill('Actions, renamed');
    await alice.page.getByRole('dialog').getByRole('button', { name: 'Save', exact: true }).click();
    await waitForText(bob.page.locator('#conv-title'), 'Actions, renamed');

    // A send the server refuses is marked failed; Retry sends it once
    // (the refusal is made by the test, on the wire).
    await alice.page.route('**/v1/conversations/*/messages', (r) => (r.request().method() === 'POST'
      ? r.fulfill({ status: 403, contentType: 'application/json', body: '{"error":{"code":"forbidden","message":"refused by the test"}}' })
      : r.fallback()));
    await send(alice.page, 'sent on retry');
    const failed = messageList(alice.page).locator('li.failed');
    await failed.getByRole('button', { name: 'Retry', exact: true }).waitFor({ timeout: 30_000 });
    await waitForText(failed, 'Not sent');
    await screenshot(alice.page, '14-failed-send.png');
    await alice.page.unroute('**/v1/conversations/*/messages');
    await failed.getByRole('button', { name: 'Retry', exact: true }).click();
    await waitForText(messageList(bob.page), 'sent on retry');
    await eventually(async () => assert.equal(await messageList(alice.page).locator('li.pending').count(), 0), { what: 'no pending sends' });
    await sleep(1000);
    for (const p of [alice, bob]) {
      assert.equal((await messageTexts(p.page)).filter((t) => t === 'sent on retry').length, 1, `${p.userId} sees the retried message once`);
    }
    noProblems(alice, bob);
  });

  test('scrolling up loads older history without moving what is on screen', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-history');
    const conv = await seed.createGroup('Long history', ['bob-history']);
    for (let i = 1; i <= 120; i++) await seed.send(conv.id, `history ${i}`, `h-${i}`);
    // Text a browser must show as text, never as markup.
    await seed.send(conv.id, '<img src=x data-xss="1"> & <b>not bold</b>', 'h-xss');

    const bob = await person('bob-history');
    await openConversation(bob.page, 'Long history');
    await waitForText(messageList(bob.page), 'not bold');
    assert.equal(await messageList(bob.page).locator('img[data-xss], b').count(), 0, 'message text was rendered as HTML');
    const before = (await messageTexts(bob.page)).length;
    assert.ok(before < 121, `the first page already held ${before} messages`);

    // Scroll to the top; the message that was first stays where it was,
    // while the older page loads (held back a moment, so the spinner is
    // seen) and once it is in.
    const list = bob.page.locator('#messages');
    const firstId = await list.locator('li.msg').first().getAttribute('data-id');
    const older = (url) => url.pathname.endsWith('/messages') && url.searchParams.has('before');
    await bob.page.route(older, async (r) => { await sleep(1500); await r.fallback(); });
    // Measured in the same task as the scroll, before its scroll event.
    const yBefore = await list.evaluate((el, id) => {
      el.scrollTop = 0;
      return el.querySelector(`li[data-id="${id}"]`).getBoundingClientRect().top;
    }, firstId);
    const anchorY = () => list.evaluate((el, id) => el.querySelector(`li[data-id="${id}"]`).getBoundingClientRect().top, firstId);
    await waitForText(list.locator('li.loading'), 'Loading earlier messages');
    const yLoading = await anchorY();
    assert.ok(Math.abs(yLoading - yBefore) < 1, `the spinner moved the view by ${yLoading - yBefore}px`);
    await eventually(async () => assert.ok((await messageTexts(bob.page)).length > before), { what: 'older messages' });
    await bob.page.unroute(older);
    await sleep(300);
    const yAfter = await anchorY();
    assert.ok(Math.abs(yAfter - yBefore) < 4, `the view jumped by ${yAfter - yBefore}px`);

    // Keep scrolling up to the very first message; order is intact.
    await eventually(async () => {
      await list.evaluate((el) => { el.scrollTop = 0; });
      const texts = await messageTexts(bob.page);
      assert.equal(texts[0], 'history 1');
    }, { timeout: 20_000, interval: 300, what: 'the first message' });
    const texts = await messageTexts(bob.page);
    assert.equal(texts.length, 121);
    for (let i = 0; i < 120; i++) assert.equal(texts[i], `history ${i + 1}`);
    noProblems(bob);
  });

  test('an uploaded image shows as a thumbnail in the other browser', T, async () => {
    const alice = await person('alice-img');
    const bob = await person('bob-img');
    await createGroup(alice.page, 'Pictures', [bob.userId]);
    await openConversation(bob.page, 'Pictures');

    const [chooser] = await Promise.all([
      alice.page.waitForEvent('filechooser'),
      alice.page.getByRole('button', { name: 'Attach file', exact: true }).click(),
    ]);
    await chooser.setFiles({ name: 'gradient.png', mimeType: 'image/png', buffer: makePng(640, 400) });
    await waitForText(alice.page.locator('#staged-files'), 'uploaded', { timeout: 20_000 });
    await messageBox(alice.page).fill('Here is the picture');
    await alice.page.getByRole('button', { name: 'Send', exact: true }).click();

    await waitForText(messageList(bob.page), 'Here is the picture');
    const img = messageList(bob.page).locator('img.att-img');
    await eventually(async () => {
      assert.ok(await img.evaluate((el) => el.complete && el.naturalWidth > 0), 'image not loaded');
    }, { timeout: 20_000, what: 'the image to load' });
    await eventually(async () => assert.equal(await img.getAttribute('data-variant'), 'thumbnail'),
      { timeout: 40_000, interval: 500, what: 'the thumbnail' });
    const width = await img.evaluate((el) => el.naturalWidth);
    assert.ok(width < 640, `the thumbnail is ${width}px wide, as wide as the original`);
    await screenshot(bob.page, '10-image-thumbnail.png');
    noProblems(alice, bob);
  });

  test('a group too big to list its members shows member_count and pages the members dialog', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-big');
    const others = Array.from({ length: 254 }, (_, i) => `big-${String(i).padStart(3, '0')}`);
    const conv = await seed.createGroup('Town hall', others);
    for (const u of ['zz-late-1', 'zz-late-2', 'zz-late-3']) {
      await seed.call('PUT', `/v1/conversations/${encodeURIComponent(conv.id)}/members/${u}`);
    }
    await seed.send(conv.id, 'Welcome, all 258 of you', 'big-1');

    const alice = await person('alice-big');
    const item = conversationButton(alice.page, 'Town hall');
    await item.waitFor();
    await openConversation(alice.page, 'Town hall');
    await waitForText(alice.page.locator('#conv-subtitle'), '258 members');

    await alice.page.getByRole('button', { name: 'Members', exact: true }).click();
    const list = alice.page.getByRole('list', { name: 'Members', exact: true });
    await eventually(async () => assert.equal(await list.getByRole('listitem').count(), 100), { what: 'the first page of members' });
    const more = alice.page.getByRole('button', { name: 'Show more members', exact: true });
    await more.click();
    await eventually(async () => assert.equal(await list.getByRole('listitem').count(), 200), { what: 'the second page' });
    await more.click();
    await eventually(async () => assert.equal(await list.getByRole('listitem').count(), 258), { what: 'the last page' });
    assert.ok(await more.isHidden(), '"Show more members" stays after the last page');
    await waitForText(list.getByRole('listitem').last(), 'zz-late-3');

    // A member leaving reaches the header and the open dialog live.
    await (await apiUser(env.server.base, 'zz-late-3')).call('DELETE', `/v1/conversations/${encodeURIComponent(conv.id)}/members/zz-late-3`);
    await waitForText(alice.page.locator('#conv-subtitle'), '257 members');
    await eventually(async () => assert.equal(await list.getByRole('listitem').count(), 100), { what: 'the reloaded first page' });
    await alice.page.keyboard.press('Escape');
    noProblems(alice);
  });

  test('search finds a message, highlights the match and jumps to it in context', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-search');
    const conv = await seed.createGroup('Search me', ['bob-search']);
    await seed.send(conv.id, 'warm-up message', 's-0');
    const target = await seed.send(conv.id, 'The quick zebra crossed <b>the</b> road', 's-target');
    for (let i = 1; i <= 80; i++) await seed.send(conv.id, `filler ${i}`, `s-${i}`);

    const bob = await person('bob-search');
    await openConversation(bob.page, 'Search me');
    await waitForText(messageList(bob.page), 'filler 80');
    assert.ok(!(await messageTexts(bob.page)).some((t) => t.includes('zebra')), 'the target is on the first page');

    const results = bob.page.getByRole('list', { name: 'Search results', exact: true });
    await eventually(async () => {
      await bob.page.getByRole('searchbox', { name: 'Search messages', exact: true }).fill('zebra');
      await bob.page.getByRole('searchbox', { name: 'Search messages', exact: true }).press('Enter');
      await waitForText(results, 'zebra', { timeout: 2000 });
    }, { timeout: 15_000, interval: 1000, what: 'a search result' });
    const hit = results.getByRole('button').filter({ hasText: 'zebra' }).first();
    assert.equal((await hit.locator('mark').first().textContent()).toLowerCase(), 'zebra');
    assert.equal(await hit.locator('b').count(), 0, 'highlight markup other than <mark> was rendered');
    await screenshot(bob.page, '11-search-results.png');

    await hit.click();
    const li = messageList(bob.page).locator(`li[data-id="${target.id}"]`);
    await li.waitFor({ timeout: 15_000 });
    await eventually(async () => assert.ok(await li.evaluate((el) => el.classList.contains('target'))), { what: 'the highlighted target' });
    const visible = await li.evaluate((el) => {
      const r = el.getBoundingClientRect();
      const l = el.closest('ol').getBoundingClientRect();
      return r.top >= l.top && r.bottom <= l.bottom;
    });
    assert.ok(visible, 'the found message is not in view');
    const texts = await messageTexts(bob.page);
    assert.ok(texts.includes('warm-up message') && texts.includes('filler 1'), 'no context around the found message');
    await screenshot(bob.page, '12-search-jump.png');
    noProblems(bob);
  });
});
