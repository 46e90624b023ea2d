// Approvals: tool writes held for a person. Each pending request shows the
// tool, the method and path, what it carries, the key and its tags; approve
// or deny it with a reason. Decided requests are listed below, newest first.
// Below them, MCP tools whose definition changed since the gateway first saw
// them (withheld from agents until accepted), with the new definition.

import { api } from './api.js';
import { announce, clear, empty, errorBox, fmtTime, h, labelled, poll } from './ui.js';

const COLUMNS = ['Requested', 'Tool', 'Call', 'Arguments', 'Key', 'Expires', 'Decision'];
const DONE = ['Requested', 'Tool', 'Call', 'State', 'By', 'Reason'];
const CHANGES = ['Seen', 'Tool', 'New definition', 'Decision'];

export async function render(root) {
  const errors = h('div');
  const result = h('div', { class: 'notice ok', role: 'status', 'data-testid': 'approvals-result' });
  const body = h('tbody', { 'data-testid': 'approvals-body' });
  const doneBody = h('tbody', { 'data-testid': 'approvals-done' });
  const changesBody = h('tbody', { 'data-testid': 'mcp-changes-body' });
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Approvals'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-testid': 'approvals-refresh', onclick: () => load() }, 'Refresh'))),
    h('p', { class: 'muted' },
      'Tool writes wait here until someone approves or denies them. An approved write runs once, with the body shown.'),
    result,
    errors,
    h('h2', {}, 'Pending'),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Pending approvals' },
      h('table', { class: 'cards', 'data-testid': 'approvals-table' },
        h('thead', {}, h('tr', {}, COLUMNS.map((t) => h('th', { scope: 'col' }, t)))),
        body)),
    h('h2', {}, 'Decided'),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Decided approvals' },
      h('table', { class: 'cards' },
        h('thead', {}, h('tr', {}, DONE.map((t) => h('th', { scope: 'col' }, t)))),
        doneBody)),
    h('h2', {}, 'Changed MCP tools'),
    h('p', { class: 'muted' },
      'An MCP tool whose name, description, schemas or annotations changed is withheld from agents until it is accepted here.'),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Changed MCP tools' },
      h('table', { class: 'cards', 'data-testid': 'mcp-changes-table' },
        h('thead', {}, h('tr', {}, CHANGES.map((t) => h('th', { scope: 'col' }, t)))),
        changesBody)));

  async function decideChange(c, decision) {
    try {
      await api(`/admin/v1/mcp/changes/${encodeURIComponent(c.id)}`, { method: 'POST', body: { decision } });
      result.textContent = `${decision === 'accept' ? 'Accepted' : 'Rejected'} the new ${c.server}__${c.tool}.`;
      announce(result.textContent);
    } catch (e) {
      clear(errors).append(errorBox(e));
    }
    await load();
  }

  function changeRow(c) {
    return labelled(h('tr', { 'data-testid': 'mcp-change-row', 'data-id': c.id },
      h('td', {}, fmtTime(c.seen_ms)),
      h('td', { class: 'mono' }, `${c.server}__${c.tool}`),
      h('td', {}, h('pre', { class: 'mono wrap', 'data-testid': 'mcp-change-definition' }, JSON.stringify(c.definition, null, 2))),
      h('td', {}, h('div', { class: 'inline-form' },
        h('button', { type: 'button', class: 'primary', 'data-testid': 'mcp-change-accept', onclick: () => decideChange(c, 'accept') }, 'Accept'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'mcp-change-reject', onclick: () => decideChange(c, 'reject') }, 'Reject')))),
    CHANGES);
  }

  async function decide(a, decision, reasonIn) {
    try {
      await api(`/admin/v1/approvals/${encodeURIComponent(a.id)}`, {
        method: 'POST',
        body: { decision, reason: reasonIn.value.trim() || null },
      });
      result.textContent = `${decision === 'approve' ? 'Approved' : 'Denied'} ${a.method || ''} ${a.path || a.tool}.`;
      announce(result.textContent);
    } catch (e) {
      clear(errors).append(errorBox(e));
    }
    await load();
  }

  function row(a) {
    const reasonIn = h('input', {
      placeholder: 'reason (optional)', 'aria-label': `Reason for ${a.id}`, 'data-testid': 'approval-reason',
    });
    const tr = h('tr', { 'data-testid': 'approval-row', 'data-id': a.id },
      h('td', {}, fmtTime(a.created_ms)),
      h('td', { class: 'mono' }, a.tool),
      h('td', { class: 'mono' }, `${a.method || ''} ${a.path || ''}`.trim()),
      h('td', {}, a.arguments
        ? h('pre', { class: 'mono wrap', 'data-testid': 'approval-arguments' }, a.arguments)
        : h('span', { class: 'muted' }, `not kept (digest ${a.body_digest.slice(0, 12)}…)`)),
      h('td', { class: 'mono' }, a.key_id || 'anonymous',
        Object.keys(a.tags || {}).length ? h('div', { class: 'muted' }, Object.entries(a.tags).map(([k, v]) => `${k}=${v}`).join(' ')) : null),
      h('td', {}, fmtTime(a.expires_ms)),
      h('td', {}, h('div', { class: 'inline-form' }, reasonIn,
        h('button', { type: 'button', class: 'primary', 'data-testid': 'approval-approve', onclick: () => decide(a, 'approve', reasonIn) }, 'Approve'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'approval-deny', onclick: () => decide(a, 'deny', reasonIn) }, 'Deny'))));
    return labelled(tr, COLUMNS);
  }

  async function load() {
    try {
      const [pending, all, changes] = await Promise.all([
        api('/admin/v1/approvals', { query: { state: 'pending', limit: 200 } }),
        api('/admin/v1/approvals', { query: { limit: 50 } }),
        api('/admin/v1/mcp/changes', { query: { state: 'pending' } }),
      ]);
      clear(errors);
      clear(changesBody).append(...(changes.data.length
        ? changes.data.map(changeRow)
        : [empty(CHANGES.length, 'No MCP tool has changed.')]));
      clear(body).append(...(pending.data.length ? pending.data.map(row) : [empty(COLUMNS.length, 'Nothing is waiting.')]));
      const decided = all.data.filter((a) => a.state !== 'pending');
      clear(doneBody).append(...(decided.length
        ? decided.map((a) => labelled(h('tr', { 'data-testid': 'approval-done-row' },
          h('td', {}, fmtTime(a.created_ms)),
          h('td', { class: 'mono' }, a.tool),
          h('td', { class: 'mono' }, `${a.method || ''} ${a.path || ''}`.trim()),
          h('td', {}, h('span', { class: `badge ${a.state === 'denied' || a.state === 'expired' ? 'err' : 'ok'}` }, a.state)),
          h('td', {}, a.decided_by || '—'),
          h('td', {}, a.reason || '—')), DONE))
        : [empty(DONE.length, 'Nothing decided yet.')]));
    } catch (e) {
      clear(errors).append(errorBox(e));
    }
  }

  await load();
  // New requests appear without a reload.
  return poll(load, 3000);
}
