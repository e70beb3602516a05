// Layout and accessibility checks for the browser tests: overlapping or
// clipped boxes, and an axe-core run (from npm) inside the page.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Whether two boxes ({x, y, width, height}) share any area. */
export function overlaps(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Whether box a lies inside box b (with `slack` pixels to spare). */
export function inside(a, b, slack = 0.5) {
  return a.x >= b.x - slack && a.y >= b.y - slack && a.x + a.width <= b.x + b.width + slack && a.y + a.height <= b.y + b.height + slack;
}

let axeSource = null;

/**
 * Runs axe-core on the page (WCAG 2 A/AA and best-practice rules) and
 * returns the violations of impact "serious" or "critical", each as
 * "rule-id: target (summary)". The script is evaluated through the
 * DevTools protocol, so the page's CSP still applies to the page itself.
 */
export async function seriousA11yViolations(page, { exclude = [] } = {}) {
  if (!axeSource) axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const result = await page.evaluate(async (exclude) => {
    const r = await window.axe.run({ exclude: exclude.map((s) => [s]) }, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => `${n.target.join(' ')} (${n.failureSummary.split('\n').slice(1, 2).join('').trim()})`) }));
  }, exclude);
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.slice(0, 5).map((n) => `${v.id}: ${n}`));
}
