// The admin page: reads /admin/status with an operator's token every 5 s.
// The token comes from this tab's sessionStorage, or from the web client's
// sign-in on the same origin; it is never put in a URL.
'use strict';

const TOKEN_KEY = 'parley.admin-token';
const WEB_TOKEN_KEY = 'parley.token';
const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(WEB_TOKEN_KEY) || '';
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function fill(table, head, rows) {
  table.replaceChildren();
  const hr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.textContent = h;
    hr.appendChild(th);
  }
  table.appendChild(hr);
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'none', 'muted');
    tr.firstChild.colSpan = head.length;
    table.appendChild(tr);
  }
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const v of r) cell(tr, String(v), typeof v === 'number' ? 'num' : '');
    table.appendChild(tr);
  }
}

function ranges(parts) {
  if (!parts || parts.length === 0) return '—';
  const out = [];
  let start = parts[0], prev = parts[0];
  for (const p of parts.slice(1).concat([null])) {
    if (p === prev + 1) { prev = p; continue; }
    out.push(start === prev ? `${start}` : `${start}–${prev}`);
    start = prev = p;
  }
  return out.join(', ');
}

function render(s) {
  $('node').textContent = `${s.node.id} · ${s.node.roles.join(', ')} · ${s.node.version}`;
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  fill($('this-node'), ['id', 'roles', 'version', 'started', 'partitions', 'engines'], [[
    s.node.id, s.node.roles.join(', '), s.node.version, new Date(s.node.started_at).toLocaleString(),
    s.node.partitions, Object.entries(s.node.engines || {}).map(([k, v]) => `${k}: ${v}`).join(', '),
  ]]);
  const conns = Object.entries(s.connections).sort();
  const total = conns.reduce((a, [, v]) => a + v, 0);
  fill($('connections'), ['transport', 'open'], conns.map(([k, v]) => [k, v]).concat([['total', total]]));
  fill($('nodes'), ['host', 'roles'], s.nodes.map((n) => [n.host, n.roles.join(', ')]));
  fill($('peers'), ['address', 'up', 'connections', 'deepest queue', 'error'], s.peers.map((p) => [
    p.address, p.up ? 'yes' : 'no',
    Object.entries(p.connections).sort().map(([k, v]) => `${k}: ${v}`).join(', ') || '0',
    Object.entries(p.deepest_queue || {}).sort().map(([k, v]) => `${k}: ${v}`).join(', ') + (p.queue_limit ? ` (of ${p.queue_limit})` : ''),
    p.error || '']));
  const groups = [];
  for (const g of s.groups) {
    groups.push([g.role, g.topic, g.state || '—', g.members.map((m) => `${m.host} (${ranges(m.partitions)})`).join('; ') || 'no member', g.total_lag]);
  }
  fill($('groups'), ['role', 'topic', 'state', 'members (partitions)', 'lag (records)'], groups);
  if (s.cluster_error) $('problem').textContent = 'Cluster view unavailable: ' + s.cluster_error;
  const owners = {};
  for (const o of s.partition_owners) (owners[o.owner || 'unowned'] ||= []).push(o.partition);
  fill($('owners'), ['owner', 'partitions'], Object.entries(owners).map(([k, v]) => [k, ranges(v)]));
  fill($('errors'), ['at', 'level', 'component', 'message', 'error'], s.recent_errors.map((e) => [new Date(e.at).toLocaleString(), e.level, e.component || '', e.message, e.error || '']));
  for (const tr of $('errors').querySelectorAll('tr')) {
    const lvl = tr.children[1] && tr.children[1].textContent;
    if (lvl === 'ERROR') tr.className = 'error'; else if (lvl === 'WARN') tr.className = 'warn';
  }
  fill($('metrics'), ['series', 'value'], Object.entries(s.metrics).sort().map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
}

async function refresh() {
  const t = token();
  if (!t) { $('signin').style.display = 'block'; return; }
  let res;
  try {
    res = await fetch('/admin/status', { headers: { Authorization: 'Bearer ' + t, Accept: 'application/json' } });
  } catch {
    $('problem').textContent = 'The node could not be reached.';
    return;
  }
  if (res.status === 401 || res.status === 403) {
    const body = await res.json().catch(() => ({}));
    $('problem').textContent = (body.error && body.error.message) || `HTTP ${res.status}`;
    sessionStorage.removeItem(TOKEN_KEY);
    $('signin').style.display = 'block';
    $('view').hidden = true;
    return;
  }
  if (!res.ok) { $('problem').textContent = `HTTP ${res.status}`; return; }
  $('problem').textContent = '';
  $('signin').style.display = 'none';
  $('view').hidden = false;
  render(await res.json());
}

$('signin').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  refresh();
});
refresh();
setInterval(refresh, 5000);
