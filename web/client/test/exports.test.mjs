// Every export of parley-client.js is declared in index.d.ts and every
// declared value exists, so the declarations cannot drift from the module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as client from '@parleychat/client';

const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
const declared = new Set([...dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]));

test('every export of the module is declared, and every declaration is exported', () => {
  assert.deepEqual([...Object.keys(client)].sort(), [...declared].sort());
});

test('every public method of ParleyClient is declared', () => {
  const methods = Object.getOwnPropertyNames(client.ParleyClient.prototype)
    .filter((n) => n !== 'constructor' && !n.startsWith('_'));
  const body = dts.slice(dts.indexOf('export declare class ParleyClient'));
  const missing = methods.filter((m) => !new RegExp(`\\n  ${m}[<(]`).test(body));
  assert.deepEqual(missing, [], 'methods of ParleyClient missing from index.d.ts');
});

test('the package version is a semantic version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.exports['.'].default, './parley-client.js');
  assert.equal(pkg.exports['.'].types, './index.d.ts');
});
