// Browser tests of the client as a finished product: validation and the
// people picker, message actions, a list that stays at the bottom, safe
// Markdown, reactions, phone and dark layouts without overlaps, keyboard
// use with focus trapped in dialogs, and axe-core with no serious findings.
// Run: bash setup.sh && npm test   (from web/e2e)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiUser } from './lib/server.mjs';
import { useServerAndBrowser } from './lib/suite.mjs';
import { makePng } from './lib/png.mjs';
import { overlaps, inside, seriousA11yViolations } from './lib/check.mjs';
import {
  createGroup, openConversation, conversationButton, send, messageTexts,
  messageList, connection, messageBox, waitForText, eventually, screenshot, sleep,
} from './lib/ui.mjs';

const T = { timeout: 240_000 };
const PHONE = { width: 375, height: 740 };

describe('Parley web client, finished', () => {
  const env = useServerAndBrowser();
  const { contexts, person } = env;

  /** A person on a phone: small screen, touch, no hover. */
  async function phonePerson(userId, { colorScheme = 'light', name = '' } = {}) {
    const context = await env.browser.newContext({ baseURL: env.server.base, viewport: PHONE, colorScheme, hasTouch: true, isMobile: true });
    contexts.push(context);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    await page.goto('/');
    await page.getByLabel('User id').fill(userId);
    if (name) await page.locator('#signin-name').fill(name);
    await page.getByRole('button', { name: 'Sign in', exact: true }).tap();
    await waitForText(connection(page), /^Connected · /, { timeout: 20_000 });
    return { context, page, problems, userId };
  }

  function noProblems(...people) {
    for (const p of people) assert.deepEqual(p.problems, [], `${p.userId}: script errors or CSP violations`);
  }

  const box = (locator) => locator.boundingBox();
  const visibleToolbars = (page) => messageList(page).locator('.msg-actions:visible');

  test('creating a conversation is validated, and people are picked from the directory', T, async () => {
    // Carol shares a conversation with Alice, so the directory knows her.
    const carolApi = await apiUser(env.server.base, 'carol-pick', 'Carol Singer');
    await carolApi.createGroup('Earlier', ['alice-pick']);
    const alice = await person('alice-pick', { name: 'Alice Liddell' });
    const dialog = alice.page.getByRole('dialog', { name: 'New conversation' });
    const err = dialog.getByRole('alert');

    await alice.page.getByRole('button', { name: 'New conversation', exact: true }).click();
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await waitForText(err, 'Add at least one member, or give the group a title.');
    assert.ok(await dialog.isVisible(), 'the empty form closed the dialog');
    await screenshot(alice.page, '40-new-conversation-empty.png');

    // Direct: one person, from a picker; never "User ids, separated by commas".
    await dialog.getByRole('radio', { name: 'Direct', exact: true }).check();
    const person1 = dialog.getByRole('combobox', { name: 'Person', exact: true });
    await person1.waitFor();
    assert.ok(!(await dialog.textContent()).includes('separated by commas'));
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await waitForText(err, 'Choose the one person this direct conversation is with.');
    await person1.pressSequentially('Car', { delay: 30 });
    const option = dialog.getByRole('option').filter({ hasText: 'Carol Singer' });
    await option.waitFor({ timeout: 10_000 });
    await screenshot(alice.page, '41-picker-directory.png');
    await person1.press('Enter');
    const chips = dialog.getByRole('list', { name: 'Chosen people' });
    await waitForText(chips, 'Carol Singer');
    assert.ok(await person1.isHidden(), 'a direct conversation offered a second person');

    // Group: an id nobody signed in with can be added, and the picker says so.
    await dialog.getByRole('radio', { name: 'Group', exact: true }).check();
    const members = dialog.getByRole('combobox', { name: 'Members', exact: true });
    await members.pressSequentially('nobody-zz', { delay: 20 });
    await waitForText(dialog.getByRole('option').first(), 'Add “nobody-zz”has not signed in yet');
    await members.press('Enter');
    await waitForText(chips.getByRole('listitem').filter({ hasText: 'nobody-zz' }), 'has not signed in yet');
    // A malformed id is refused with a message.
    await members.fill('not an id!');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await waitForText(err, 'is not a valid user id');
    await members.fill('');
    await dialog.getByLabel('Title', { exact: true }).fill('Picked');
    await screenshot(alice.page, '42-picker-chips.png');
    assert.deepEqual(await seriousA11yViolations(alice.page), [], 'axe: the new-conversation dialog');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
    await waitForText(alice.page.locator('#conv-title'), 'Picked');
    await waitForText(alice.page.locator('#conv-subtitle'), '3 members');
    noProblems(alice);
  });

  test('one message toolbar at a time, never over the edit box; delete asks in the page; keyboard works end to end', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-tools', 'Alice Liddell');
    const conv = await seed.createGroup('Tools', ['bob-tools']);
    const bobApi = await apiUser(env.server.base, 'bob-tools', 'Bob Builder');
    await seed.send(conv.id, 'one from alice', 't1');
    await bobApi.send(conv.id, 'two from bob', 't2');
    await seed.send(conv.id, 'three from alice', 't3');
    await seed.send(conv.id, 'four from alice, grouped', 't4');
    const alice = await person('alice-tools');
    await openConversation(alice.page, 'Tools');
    const item = (text) => messageList(alice.page).locator('li.msg').filter({ has: alice.page.locator('.msg-text > p').getByText(text, { exact: true }) });
    await item('four from alice, grouped').waitFor();
    // Consecutive messages of one sender share a header; a day separator leads.
    assert.ok(await item('four from alice, grouped').evaluate((el) => el.classList.contains('grouped')));
    assert.ok(!(await item('three from alice').evaluate((el) => el.classList.contains('grouped'))));
    await waitForText(messageList(alice.page).locator('.day-sep').first(), 'Today');
    await waitForText(messageList(alice.page).locator('.conv-start'), 'This is the start of Tools.');

    // Hover one, then another: only one toolbar shows.
    await item('one from alice').hover();
    await item('two from bob').hover();
    assert.equal(await visibleToolbars(alice.page).count(), 1);
    // Keyboard focus in one and the mouse over another: still one.
    await item('three from alice').focus();
    await item('three from alice').getByRole('button', { name: 'Reply', exact: true }).focus();
    await item('one from alice').hover();
    assert.equal(await visibleToolbars(alice.page).count(), 1);

    // Editing "three": no toolbar (its own or the next one's) covers the edit box.
    await item('three from alice').hover();
    await item('three from alice').getByRole('button', { name: 'Edit', exact: true }).click();
    const edit = alice.page.getByRole('textbox', { name: 'Edit message' });
    await edit.waitFor();
    const editForm = messageList(alice.page).locator('form.edit-form');
    for (const text of ['four from alice, grouped', 'two from bob']) {
      await item(text).hover();
      const bars = visibleToolbars(alice.page);
      assert.equal(await bars.count(), 1);
      assert.ok(!overlaps(await box(bars.first()), await box(editForm)), `${text}: toolbar over the edit box`);
      assert.ok(inside(await box(bars.first()), await box(item(text))), `${text}: toolbar outside its message`);
    }
    await screenshot(alice.page, '43-edit-and-toolbar.png');
    await edit.press('Escape');

    // Delete: an in-app dialog; Escape cancels and focus comes back.
    let nativeDialogs = 0;
    alice.page.on('dialog', (d) => { nativeDialogs++; d.dismiss(); });
    await item('one from alice').hover();
    await item('one from alice').getByRole('button', { name: 'Delete', exact: true }).click();
    const confirm = alice.page.getByRole('alertdialog', { name: 'Delete this message?' });
    await confirm.waitFor();
    // Focus is trapped: Tab cycles inside the dialog.
    for (let i = 0; i < 5; i++) {
      await alice.page.keyboard.press('Tab');
      assert.ok(await confirm.evaluate((d) => d.contains(document.activeElement)), 'Tab left the dialog');
    }
    await alice.page.keyboard.press('Shift+Tab');
    assert.ok(await confirm.evaluate((d) => d.contains(document.activeElement)), 'Shift+Tab left the dialog');
    await alice.page.keyboard.press('Escape');
    await confirm.waitFor({ state: 'detached' });
    assert.equal(nativeDialogs, 0);
    assert.ok((await messageTexts(alice.page)).includes('one from alice'));

    // Keyboard end to end: from the message box, Shift+Tab to the list,
    // ArrowUp into the newest message, Tab to its Reply, Enter, type, Enter.
    await messageBox(alice.page).focus();
    await messageList(alice.page).focus();
    await alice.page.keyboard.press('ArrowUp');
    assert.equal(await alice.page.evaluate(() => document.activeElement.closest('li.msg')?.textContent.includes('four from alice')), true);
    await alice.page.keyboard.press('ArrowUp');
    await alice.page.keyboard.press('Tab');
    assert.equal(await alice.page.evaluate(() => document.activeElement.textContent), 'Reply');
    await alice.page.keyboard.press('Enter');
    await waitForText(alice.page.locator('#reply-preview'), 'three from alice');
    assert.equal(await alice.page.evaluate(() => document.activeElement.id), 'message-input');
    await alice.page.keyboard.type('answered by keyboard');
    await alice.page.keyboard.press('Enter');
    await waitForText(messageList(alice.page).locator('li.msg:not(.pending)').last(), 'answered by keyboard');
    // New conversation from the keyboard: the dialog traps focus, Escape closes it.
    await alice.page.getByRole('button', { name: 'New conversation', exact: true }).focus();
    await alice.page.keyboard.press('Enter');
    const dialog = alice.page.getByRole('dialog', { name: 'New conversation' });
    await dialog.waitFor();
    for (let i = 0; i < 12; i++) {
      await alice.page.keyboard.press('Tab');
      assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), `Tab ${i + 1} left the dialog`);
    }
    await alice.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(await seriousA11yViolations(alice.page), [], 'axe: the chat with a reply');
    noProblems(alice);
  });

  test('on a phone a tap opens one message\'s actions and a tap elsewhere closes them', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-tap', 'Alice Liddell');
    const conv = await seed.createGroup('Taps', ['bob-tap']);
    for (let i = 1; i <= 4; i++) await seed.send(conv.id, `tap message ${i}`, `tap-${i}`);
    const phone = await phonePerson('alice-tap');
    await conversationButton(phone.page, 'Taps').tap();
    await waitForText(messageList(phone.page), 'tap message 4');
    const item = (n) => messageList(phone.page).locator('li.msg').filter({ hasText: `tap message ${n}` });
    assert.equal(await visibleToolbars(phone.page).count(), 0, 'actions showing before any tap');
    await item(3).locator('.msg-text').tap();
    assert.equal(await visibleToolbars(phone.page).count(), 1);
    await item(2).locator('.msg-text').tap();
    assert.equal(await visibleToolbars(phone.page).count(), 1, 'two rows of actions at once');
    assert.ok(await item(2).locator('.msg-actions').isVisible());
    await screenshot(phone.page, '44-phone-actions.png');
    await phone.page.locator('#conv-title').tap();
    await eventually(async () => assert.equal(await visibleToolbars(phone.page).count(), 0), { what: 'the actions to close' });
    noProblems(phone);
  });

  test('the list stays at the bottom after a resize and an image load, and "Seen by" is not clipped', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-bottom', 'Alice Liddell');
    const conv = await seed.createGroup('Bottom', ['bob-bottom']);
    for (let i = 1; i <= 40; i++) await seed.send(conv.id, `line ${i}`, `b-${i}`);
    const alice = await person('alice-bottom');
    const bob = await person('bob-bottom', { name: 'Bob Builder' });
    await openConversation(alice.page, 'Bottom');
    await send(alice.page, 'newest from alice');
    await openConversation(bob.page, 'Bottom');
    await waitForText(messageList(alice.page), 'Seen by Bob Builder');
    const list = messageList(alice.page);
    const newestInView = async (what) => {
      await eventually(async () => {
        const l = await box(list);
        const last = await box(list.locator('li.msg').last());
        assert.ok(last.y + last.height <= l.y + l.height + 1, `${what}: the newest message ends ${Math.round(last.y + last.height - l.y - l.height)}px below the list`);
      }, { timeout: 5000, what });
    };
    await newestInView('after opening');
    const seen = list.locator('.seen');
    const clipped = await seen.evaluate((el) => el.scrollHeight > el.clientHeight + 0.5 || getComputedStyle(el).overflow !== 'visible' && el.scrollHeight > el.clientHeight);
    assert.ok(!clipped, '"Seen by" is clipped');
    const seenBox = await box(seen), listBox = await box(list);
    assert.ok(inside(seenBox, listBox), `"Seen by" ${JSON.stringify(seenBox)} is outside the list ${JSON.stringify(listBox)}`);

    for (const size of [{ width: 1280, height: 520 }, { width: 900, height: 700 }, { width: 1280, height: 800 }]) {
      await alice.page.setViewportSize(size);
      await newestInView(`after a resize to ${size.width}×${size.height}`);
    }
    // An image from bob arrives and loads: the newest message stays in view.
    const [chooser] = await Promise.all([
      bob.page.waitForEvent('filechooser'),
      bob.page.getByRole('button', { name: 'Attach file', exact: true }).click(),
    ]);
    await chooser.setFiles({ name: 'tall.png', mimeType: 'image/png', buffer: makePng(300, 600) });
    await waitForText(bob.page.locator('#staged-files'), 'uploaded', { timeout: 20_000 });
    await messageBox(bob.page).fill('a tall picture');
    await messageBox(bob.page).press('Enter');
    await waitForText(list, 'a tall picture');
    await eventually(async () => assert.ok(await list.locator('img.att-img').last().evaluate((el) => el.complete && el.naturalWidth > 0)),
      { timeout: 20_000, what: 'the image to load' });
    await newestInView('after the image loaded');
    await screenshot(alice.page, '45-bottom-after-image.png');
    noProblems(alice, bob);
  });

  test('Markdown renders bold, italic, code, lists and links, and never markup or scripts', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-md', 'Alice Liddell');
    const conv = await seed.createGroup('Markdown', ['bob-md']);
    await seed.send(conv.id, 'Plan for **Friday**, _really_:\n- ship `v2`\n- read [the notes](https://example.com/notes)\n\n```\nif (a < b) { go(); }\n```', 'md-1');
    await seed.send(conv.id, '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> [click](javascript:window.__xss=3) **<b>bold tag</b>**', 'md-2');
    const bob = await person('bob-md');
    await openConversation(bob.page, 'Markdown');
    const list = messageList(bob.page);
    await waitForText(list, 'bold tag');
    const first = list.locator('li.msg').filter({ hasText: 'Plan for' });
    assert.equal(await first.locator('strong').textContent(), 'Friday');
    assert.equal(await first.locator('em').textContent(), 'really');
    assert.equal(await first.locator('li').count(), 2);
    assert.equal(await first.locator('li code').textContent(), 'v2');
    assert.equal(await first.locator('pre code').textContent(), 'if (a < b) { go(); }');
    assert.equal(await first.getByRole('link', { name: 'the notes' }).getAttribute('href'), 'https://example.com/notes');
    const evil = list.locator('li.msg').filter({ hasText: 'bold tag' });
    assert.equal(await evil.locator('script, img, b, a').count(), 0, 'markup from a message became elements');
    assert.ok((await evil.textContent()).includes('<script>window.__xss=1</script>'), 'the text was not shown as typed');
    assert.equal(await bob.page.evaluate(() => window.__xss), undefined);
    await evil.locator('.msg-text').click();
    assert.equal(await bob.page.evaluate(() => window.__xss), undefined);
    // The list preview shows the text without the markers.
    await waitForText(conversationButton(bob.page, 'Markdown'), 'Alice Liddell: <script>');
    await screenshot(bob.page, '46-markdown.png');
    noProblems(bob);
  });

  test('the conversation list previews the last message on load, and a deleted one as deleted', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-prev', 'Alice Liddell');
    const conv = await seed.createGroup('Previews', ['bob-prev']);
    await seed.send(conv.id, 'older words', 'pv-1');
    const last = await seed.send(conv.id, 'the **last** words', 'pv-2');
    const bob = await person('bob-prev');
    const item = conversationButton(bob.page, 'Previews');
    await waitForText(item, 'Alice Liddell: the last words'); // on load, without markers
    assert.ok(!(await item.textContent()).includes('members'));
    // Deleted live: the preview drops the text at once.
    await seed.call('DELETE', `/v1/conversations/${encodeURIComponent(conv.id)}/messages/${encodeURIComponent(last.id)}`);
    await waitForText(item, 'Message deleted');
    assert.ok(!(await item.textContent()).includes('last words'), 'the deleted text stays in the list');
    // And on a fresh load (the server's last_message is a tombstone).
    await bob.page.reload();
    await waitForText(connection(bob.page), /^Connected · /, { timeout: 20_000 });
    await waitForText(conversationButton(bob.page, 'Previews'), 'Message deleted');
    assert.ok(!(await conversationButton(bob.page, 'Previews').textContent()).includes('last words'));
    noProblems(bob);
  });

  test('times and dates follow the reader\'s locale', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-locale', 'Alice Liddell');
    const conv = await seed.createGroup('Locale', ['bob-locale']);
    const m = await seed.send(conv.id, 'what time is it?', 'loc-1');
    const shown = {};
    for (const locale of ['en-US', 'de-DE']) {
      const bob = await person('bob-locale', { locale });
      await openConversation(bob.page, 'Locale');
      shown[locale] = await messageList(bob.page).locator('li.msg time').first().textContent();
      const want = await bob.page.evaluate(([iso, loc]) => new Date(iso).toLocaleTimeString(loc, { hour: 'numeric', minute: '2-digit' }), [m.created_at, locale]);
      assert.equal(shown[locale], want, `${locale}: the time shows as ${shown[locale]}`);
    }
    assert.match(shown['en-US'], /M$/, 'en-US: no AM/PM');
    assert.doesNotMatch(shown['de-DE'], /M$/, 'de-DE: AM/PM');
  });

  test('reactions: any emoji from the picker, and joining one from its chip', T, async () => {
    const seed = await apiUser(env.server.base, 'alice-react', 'Alice Liddell');
    const conv = await seed.createGroup('Reactions', ['bob-react']);
    await seed.send(conv.id, 'react to me', 'r-1');
    const alice = await person('alice-react');
    const bob = await person('bob-react', { name: 'Bob Builder' });
    await openConversation(alice.page, 'Reactions');
    await openConversation(bob.page, 'Reactions');
    const msg = (p) => messageList(p.page).locator('li.msg').filter({ hasText: 'react to me' });
    await msg(bob).hover();
    await msg(bob).getByRole('button', { name: 'React', exact: true }).click();
    await msg(bob).getByRole('button', { name: 'More reactions' }).click();
    await screenshot(bob.page, '47-reaction-picker.png');
    await msg(bob).getByRole('button', { name: 'React with 🚀' }).click();
    const chip = (p) => msg(p).getByRole('button', { name: /^🚀 / });
    await waitForText(chip(alice), '🚀 1');
    assert.match(await chip(alice).getAttribute('aria-label'), /by Bob Builder/);
    await chip(alice).click();
    await waitForText(chip(bob), '🚀 2');
    assert.equal(await chip(alice).getAttribute('aria-pressed'), 'true');
    noProblems(alice, bob);
  });

  for (const colorScheme of ['light', 'dark']) {
    test(`phone in ${colorScheme} mode: one-row header, nothing overlaps or is clipped, no serious axe findings`, T, async () => {
      const seed = await apiUser(env.server.base, `alice-ph-${colorScheme}`, 'Alice Liddell');
      const conv = await seed.createGroup(`Phone ${colorScheme}`, [`bob-ph-${colorScheme}`]);
      const bobApi = await apiUser(env.server.base, `bob-ph-${colorScheme}`, 'Bob Builder');
      for (let i = 1; i <= 12; i++) await (i % 3 ? seed : bobApi).send(conv.id, `phone message ${i}: ${'words '.repeat(i % 5 * 3)}`, `ph-${i}`);
      await bobApi.send(conv.id, 'the newest message, with a descender: gjpqy', 'ph-last');
      const phone = await phonePerson(`alice-ph-${colorScheme}`, { colorScheme });
      assert.deepEqual(await seriousA11yViolations(phone.page), [], 'axe: the conversation list on a phone');
      await conversationButton(phone.page, `Phone ${colorScheme}`).tap();
      const list = messageList(phone.page);
      await waitForText(list, 'gjpqy');
      await sleep(300);

      // The header is one row and keeps the Connection landmark.
      const header = await box(phone.page.locator('.topbar'));
      assert.ok(header.height <= 60, `the header is ${header.height}px tall`);
      const tops = await phone.page.locator('.topbar > :visible').evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => [r.top, r.bottom]));
      for (const [top, bottom] of tops) assert.ok(top >= header.y - 1 && bottom <= header.y + header.height + 1, 'a header item is on a second row');
      assert.match(await connection(phone.page).textContent(), /^Connected · /);

      // The newest message sits above the composer, in full.
      const composer = await box(phone.page.locator('#composer'));
      const l = await box(list);
      const newest = await box(list.locator('li.msg').last());
      assert.ok(newest.y + newest.height <= l.y + l.height + 1, 'the newest message is cut off');
      assert.ok(!overlaps(newest, composer), 'the newest message is under the composer');
      assert.ok(composer.y + composer.height <= PHONE.height + 1, 'the composer is off screen');
      const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);

      // Actions of the newest message: inside the list, not over the composer or another message.
      await list.locator('li.msg').last().locator('.msg-text').tap();
      const bar = list.locator('li.msg').last().locator('.msg-actions');
      await bar.waitFor();
      await phone.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const barBox = await box(bar);
      assert.ok(!overlaps(barBox, composer), 'the actions are under the composer');
      assert.ok(inside(barBox, await box(list)), 'the actions are clipped by the list');
      const others = await list.locator('li.msg').evaluateAll((els) => els.slice(0, -1).map((e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; }));
      for (const o of others) assert.ok(!overlaps(barBox, o), 'the actions cover another message');
      // Nothing in the header, the composer or the newest message is clipped sideways.
      const clipped = await phone.page.evaluate(() => [...document.querySelectorAll('.topbar *, .composer *, #messages li.msg:last-child *')]
        .filter((e) => e.offsetParent !== null && e.getClientRects().length && !e.closest('.visually-hidden, .conn-text'))
        .filter((e) => { const r = e.getBoundingClientRect(); return r.right > window.innerWidth + 1 || r.left < -1; })
        .map((e) => e.className || e.tagName));
      assert.deepEqual(clipped, [], 'elements run off the screen');
      await screenshot(phone.page, `48-phone-${colorScheme}.png`);
      assert.deepEqual(await seriousA11yViolations(phone.page), [], 'axe: a conversation on a phone');

      // Offline is shown where the person types.
      await phone.context.setOffline(true);
      await waitForText(phone.page.locator('#composer-status'), 'You are offline', { timeout: 15_000 });
      const status = await box(phone.page.locator('#composer-status'));
      assert.ok(inside(status, await box(phone.page.locator('#composer'))), 'the offline note is outside the composer');
      await screenshot(phone.page, `49-phone-${colorScheme}-offline.png`);
      await phone.context.setOffline(false);
      await waitForText(connection(phone.page), /^Connected · /, { timeout: 30_000 });
      noProblems(phone);
    });
  }

  test('desktop screens in light and dark mode have no serious axe findings; the search panel fits', T, async () => {
    for (const colorScheme of ['light', 'dark']) {
      const ctx = await env.browser.newContext({ baseURL: env.server.base, colorScheme });
      contexts.push(ctx);
      const page = await ctx.newPage();
      await page.goto('/');
      await page.getByLabel('User id').waitFor();
      assert.deepEqual(await seriousA11yViolations(page), [], `axe: sign-in, ${colorScheme}`);
      const seed = await apiUser(env.server.base, `alice-axe-${colorScheme}`, 'Alice Liddell');
      const conv = await seed.createGroup('Accessible', [`bob-axe-${colorScheme}`]);
      await seed.send(conv.id, 'Is **this** readable? `yes`', 'ax-1');
      await (await apiUser(env.server.base, `bob-axe-${colorScheme}`, 'Bob Builder')).send(conv.id, 'Very, thanks 👍', 'ax-2');
      const alice = await person(`alice-axe-${colorScheme}`, { colorScheme });
      await openConversation(alice.page, 'Accessible');
      await waitForText(messageList(alice.page), 'Very, thanks');
      assert.deepEqual(await seriousA11yViolations(alice.page), [], `axe: chat, ${colorScheme}`);
      await alice.page.getByRole('button', { name: 'Members', exact: true }).click();
      await waitForText(alice.page.locator('#members-list'), 'Bob Builder');
      assert.deepEqual(await seriousA11yViolations(alice.page), [], `axe: members dialog, ${colorScheme}`);
      await alice.page.keyboard.press('Escape');
      // Search: the panel's inputs keep a margin to the window's edge.
      await alice.page.getByRole('searchbox', { name: 'Search messages', exact: true }).fill('readable');
      await alice.page.getByRole('searchbox', { name: 'Search messages', exact: true }).press('Enter');
      const panel = alice.page.locator('#search-panel');
      await panel.waitFor();
      await panel.locator('summary').click();
      const p = await box(panel);
      for (const input of await panel.locator('input:visible, select:visible').all()) {
        const b = await box(input);
        assert.ok(b.x >= p.x + 8 && b.x + b.width <= p.x + p.width - 8, 'a search input touches the panel edge');
      }
      await screenshot(alice.page, `50-search-panel-${colorScheme}.png`);
      assert.deepEqual(await seriousA11yViolations(alice.page), [], `axe: search panel, ${colorScheme}`);
      noProblems(alice);
    }
  });
});
