// The server and browser that the tests of one describe block share.
import { before, after } from 'node:test';
import { startServer } from './server.mjs';
import { launchBrowser, signIn } from './ui.mjs';

/**
 * Called in a describe block: starts a `parley serve` and a browser before
 * its tests and closes them, and every context in contexts, after them.
 * server and browser are set once the tests run; person signs userId in
 * on a new context (see signIn) that is closed with the others.
 */
export function useServerAndBrowser() {
  const env = { server: undefined, browser: undefined, contexts: [] };

  before(async () => {
    env.server = await startServer();
    env.browser = await launchBrowser();
  }, { timeout: 600_000 });

  after(async () => {
    for (const c of env.contexts) await c.close().catch(() => {});
    if (env.browser) await env.browser.close();
    if (env.server) await env.server.stop();
  });

  env.person = async (userId, opts) => {
    const p = await signIn(env.browser, env.server.base, userId, opts);
    env.contexts.push(p.context);
    return p;
  };

  return env;
}
