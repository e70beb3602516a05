// Browser helpers: Debian's Chromium through playwright-core, and the web
// client's landmarks (API.md, "Web client landmarks").
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACTS = resolve(dirname(fileURLToPath(import.meta.url)), '../artifacts');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Retries fn until it stops throwing (and returns other than false). */
export async function eventually(fn, { timeout = 15_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false) return v;
      last = new Error('returned false');
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${last && last.message}`);
    await sleep(interval);
  }
}

export const connection = (page) => page.getByRole('status', { name: 'Connection', exact: true });
export const messageList = (page) => page.getByRole('list', { name: 'Messages', exact: true });
export const conversationList = (page) => page.getByRole('list', { name: 'Conversations', exact: true });
export const messageBox = (page) => page.getByRole('textbox', { name: 'Message', exact: true });

export async function waitForText(locator, pattern, opts = {}) {
  return eventually(async () => {
    const t = (await locator.textContent({ timeout: 1000 })) || '';
    if (!(typeof pattern === 'string' ? t.includes(pattern) : pattern.test(t))) throw new Error(`text is ${JSON.stringify(t)}`);
    return t;
  }, { what: `text ${pattern}`, ...opts });
}

export const TRANSPORT_LABELS = { websocket: 'WebSocket', sse: 'SSE', longpoll: 'Long-poll' };

/**
 * Opens a browser context as a person, signs in with dev sign-in and waits
 * for the realtime connection (on the given transport).
 */
export async function signIn(browser, base, userId, { transport = 'auto', colorScheme = 'light', viewport = { width: 1280, height: 800 }, name = '', locale = 'en-US' } = {}) {
  const context = await browser.newContext({ baseURL: base, colorScheme, viewport, locale });
  const page = await context.newPage();
  const problems = [];
  const realtimeUrls = []; // every WebSocket and EventSource URL the page opened
  page.on('websocket', (ws) => realtimeUrls.push(ws.url()));
  page.on('request', (req) => { if (req.url().includes('/v1/events')) realtimeUrls.push(req.url()); });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    const t = msg.text();
    if (/Content Security Policy|Refused to/i.test(t)) problems.push(`csp: ${t}`);
  });
  await page.goto('/');
  await page.getByLabel('User id').fill(userId);
  if (name) await page.locator('#signin-name').fill(name);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await waitForText(connection(page), /^Connected · /, { timeout: 20_000 });
  if (transport !== 'auto') await setTransport(page, transport);
  return { context, page, problems, userId, realtimeUrls };
}

export async function setTransport(page, transport) {
  await page.locator('#settings > summary').click();
  await page.getByLabel('Transport', { exact: true }).selectOption(transport);
  await page.keyboard.press('Escape');
  await waitForText(connection(page), `Connected · ${TRANSPORT_LABELS[transport]}`, { timeout: 20_000 });
}

export async function createGroup(page, title, members) {
  await page.getByRole('button', { name: 'New conversation', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Title', { exact: true }).fill(title);
  const box = dialog.getByLabel('Members', { exact: true });
  await box.fill(members.join(', '));
  await box.press('Enter'); // the typed ids become chips in the people picker
  await dialog.getByRole('button', { name: 'Create', exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
  await waitForText(page.locator('#conv-title'), title);
}

export function conversationButton(page, title) {
  return conversationList(page).getByRole('button').filter({ has: page.locator('.conv-name').getByText(title, { exact: true }) });
}

export async function openConversation(page, title) {
  const b = conversationButton(page, title);
  await b.waitFor({ timeout: 15_000 });
  await b.click();
  await waitForText(page.locator('#conv-title'), title);
}

export async function send(page, text) {
  const box = messageBox(page);
  await box.fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/** Texts of confirmed (not optimistic) messages, in list order. */
export function messageTexts(page) {
  return messageList(page).locator('li.msg:not(.pending) .msg-text').allTextContents();
}

export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name) });
}
