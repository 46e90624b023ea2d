// Keys: list with limits and budget use, create (the secret is shown once, in
// a dialog, and wiped from the page when it closes), edit limits inline, and
// revoke after confirmation.

import { ApiError, api } from './api.js';
import {
  announce, clear, confirmDialog, empty, errorBox, field, fmtInt, fmtTime, fmtUsd, h, labelled, nextId, setFieldError,
} from './ui.js';

const FIELDS = [
  // name, label, kind, hint
  ['name', 'Name', 'text', null],
  ['models', 'Models', 'list', 'Globs, comma-separated: openai/*, smart. Empty allows all.'],
  ['rpm', 'Requests / min', 'int', null],
  ['tpm', 'Tokens / min', 'int', null],
  ['max_concurrent', 'Max in flight', 'int', 'Requests at once; a stream counts until its end'],
  ['budget_usd', 'Budget (USD)', 'money', null],
  ['budget_period', 'Budget period', 'period', null],
  ['log', 'Log mode', 'log', null],
  ['jurisdictions', 'Jurisdictions', 'list', 'Comma-separated, e.g. eu, us'],
  ['cache_namespace', 'Cache namespace', 'text', 'Default: one per key'],
  ['cache_ttl_s', 'Cache TTL (s)', 'int', null],
  ['metadata', 'Default tags', 'tags', 'team=search, env=prod'],
];

const COLUMNS = ['Key', 'Models', 'Limits', 'Budget', 'Log', 'Created', 'Status', 'Actions'];

export async function render(root) {
  const errors = h('div');
  const tbody = h('tbody', { 'data-testid': 'keys-body' });
  const showRevoked = h('input', { type: 'checkbox', 'data-testid': 'keys-show-revoked', onchange: () => load() });
  const create = keyForm(null, {
    submitLabel: 'Create key',
    testid: 'key-create',
    async onSubmit(body) {
      const k = await api('/admin/v1/keys', { method: 'POST', body });
      await load();
      await showSecret(k);
      announce(`Key ${k.name} created.`);
    },
  });

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Keys'),
      h('label', { class: 'checks' }, showRevoked, 'Show revoked keys')),
    h('section', { class: 'card', 'aria-labelledby': 'create-key-title' },
      h('h2', { id: 'create-key-title' }, 'Create a key'), create.form),
    errors,
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Keys table' },
      h('table', { class: 'cards', 'data-testid': 'keys-table' },
        h('thead', {}, h('tr', {}, COLUMNS.map((t) =>
          h('th', { scope: 'col' }, t)))),
        tbody)));

  async function load() {
    let data;
    try {
      data = await api('/admin/v1/keys', { query: { include_revoked: showRevoked.checked ? 'true' : '' } });
    } catch (e) {
      clear(errors).append(errorBox(e));
      return;
    }
    clear(errors);
    const keys = data.data || [];
    clear(tbody).append(...(keys.length ? keys.map(row) : [empty(8, 'No keys yet.')]));
    // Budget use needs one call per key with a budget.
    await Promise.all(keys.filter((k) => k.budget_usd != null && !k.revoked).map(async (k) => {
      const cell = tbody.querySelector(`tr[data-key-id="${CSS.escape(k.id)}"] [data-budget]`);
      try {
        const full = await api(`/admin/v1/keys/${encodeURIComponent(k.id)}`);
        if (cell) clear(cell).append(budget(full));
      } catch { /* leave the plain budget */ }
    }));
  }

  function row(k) {
    const tr = h('tr', { 'data-testid': 'key-row', 'data-key-id': k.id, 'data-key-name': k.name, 'data-revoked': String(!!k.revoked) },
      h('td', {}, h('strong', {}, k.name),
        h('div', { class: 'muted mono' }, k.id),
        h('div', { class: 'muted mono', 'aria-label': `secret ending in ${k.last4}` }, `sk-sy-…${k.last4}`)),
      h('td', {}, k.models && k.models.length ? h('div', { class: 'tags' }, k.models.map((m) => h('span', { class: 'tag' }, m))) : h('span', { class: 'muted' }, 'all')),
      h('td', { class: 'nowrap', 'data-testid': 'key-limits' },
        h('div', {}, `${k.rpm != null ? fmtInt(k.rpm) : '∞'} req/min`),
        h('div', {}, `${k.tpm != null ? fmtInt(k.tpm) : '∞'} tok/min`)),
      h('td', { 'data-budget': '' }, budget(k)),
      h('td', {}, k.log || 'full'),
      h('td', {}, fmtTime(k.created_at).slice(0, 10)),
      h('td', {}, k.revoked ? h('span', { class: 'badge err' }, 'revoked') : h('span', { class: 'badge ok' }, 'active')),
      h('td', { class: 'nowrap' }, k.revoked ? null : [
        h('button', {
          type: 'button', class: 'small', 'data-testid': 'key-edit-open', 'aria-expanded': 'false',
          'aria-label': `Edit limits of ${k.name}`, onclick: (ev) => toggleEdit(tr, k, ev.currentTarget),
        }, 'Edit'), ' ',
        h('button', {
          type: 'button', class: 'small', 'data-testid': 'key-revoke', 'aria-label': `Revoke ${k.name}`,
          onclick: () => revoke(k),
        }, 'Revoke'),
      ]));
    return labelled(tr, COLUMNS);
  }

  function toggleEdit(tr, k, btn) {
    const open = tr.nextElementSibling && tr.nextElementSibling.dataset.editFor === k.id;
    if (open) {
      tr.nextElementSibling.remove();
      btn.setAttribute('aria-expanded', 'false');
      return;
    }
    const edit = keyForm(k, {
      submitLabel: 'Save changes',
      testid: 'key-edit',
      async onSubmit(body) {
        if (!Object.keys(body).length) { closeEdit(); return; }
        await api(`/admin/v1/keys/${encodeURIComponent(k.id)}`, { method: 'PATCH', body });
        announce(`Key ${k.name} updated.`);
        await load();
      },
      onCancel: () => { closeEdit(); btn.focus(); },
    });
    const editRow = h('tr', { 'data-edit-for': k.id, 'data-testid': 'key-edit-row' },
      h('td', { colspan: 8 }, h('h3', {}, `Edit ${k.name}`), edit.form));
    function closeEdit() { editRow.remove(); btn.setAttribute('aria-expanded', 'false'); }
    tr.after(editRow);
    btn.setAttribute('aria-expanded', 'true');
    edit.focus();
  }

  async function revoke(k) {
    const ok = await confirmDialog({
      title: `Revoke key “${k.name}”?`,
      body: h('p', {}, 'Requests using this key are refused at once (401). This cannot be undone.'),
      confirm: 'Revoke key',
    });
    if (!ok) return;
    try {
      await api(`/admin/v1/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
      announce(`Key ${k.name} revoked.`);
    } catch (e) {
      clear(errors).append(errorBox(e));
      return;
    }
    await load();
    root.querySelector('h1')?.setAttribute('tabindex', '-1');
    root.querySelector('h1')?.focus();
  }

  await load();
}

function budget(k) {
  if (k.budget_usd == null) return h('span', { class: 'muted' }, 'none');
  const period = k.budget_period ? ` / ${k.budget_period}` : '';
  if (k.budget_spent_usd == null) return h('span', {}, `${fmtUsd(k.budget_usd)}${period}`);
  const total = k.budget_usd || 0;
  const spent = k.budget_spent_usd || 0;
  const held = k.budget_held_usd || 0;
  const frac = (v) => (total > 0 ? Math.min(1, v / total) : (v > 0 ? 1 : 0));
  const bar = h('div', { class: `bar${spent + held > total ? ' over' : ''}`, 'aria-hidden': 'true' });
  const sp = h('span', { class: 'spent' });
  sp.style.width = `${frac(spent) * 100}%`;
  const hd = h('span', { class: 'held' });
  hd.style.left = `${frac(spent) * 100}%`;
  hd.style.width = `${Math.max(0, Math.min(1 - frac(spent), frac(held))) * 100}%`;
  bar.append(sp, hd);
  return h('div', { 'data-testid': 'key-budget' },
    bar,
    h('div', {}, `${fmtUsd(spent)} spent`, held ? ` + ${fmtUsd(held)} held` : '', ` of ${fmtUsd(total)}${period}`));
}

/// The create and edit form. On create, empty fields are left out; on edit,
/// only changed fields are sent and an emptied field is sent as null.
function keyForm(initial, { submitLabel, testid, onSubmit, onCancel }) {
  const controls = {};
  const prefix = nextId(testid);
  for (const [name, , kind] of FIELDS) {
    const id = `${prefix}-${name}`;
    const attrs = { id, name, 'data-testid': `${testid}-${name}`, autocomplete: 'off' };
    let c;
    if (kind === 'period') {
      c = h('select', attrs, h('option', { value: '' }, '—'), ['day', 'month', 'total'].map((v) => h('option', { value: v }, v)));
    } else if (kind === 'log') {
      c = h('select', attrs, h('option', { value: '' }, 'gateway default ([logs] mode)'), ['full', 'metadata', 'none'].map((v) => h('option', { value: v }, v)));
    } else if (kind === 'int') {
      c = h('input', { ...attrs, type: 'number', min: 1, step: 1, inputmode: 'numeric' });
    } else if (kind === 'money') {
      c = h('input', { ...attrs, type: 'number', min: 0, step: 'any', inputmode: 'decimal' });
    } else {
      c = h('input', { ...attrs, type: 'text', required: name === 'name' && !initial });
    }
    controls[name] = c;
  }
  const start = initial ? Object.fromEntries(FIELDS.map(([n, , kind]) => [n, show(initial[n], kind)])) : {};
  for (const [n, v] of Object.entries(start)) controls[n].value = v;

  const formError = h('p', { class: 'error-text', role: 'alert', 'data-testid': `${testid}-error` });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': `${testid}-submit` }, submitLabel);
  const form = h('form', { 'data-testid': `${testid}-form`, novalidate: true, onsubmit: send },
    h('div', { class: 'form-grid' },
      FIELDS.map(([name, label, , hint]) => field(label + (name === 'name' && !initial ? ' (required)' : ''), controls[name], { hint, testid: `${testid}-${name}` }))),
    formError,
    h('div', { class: 'actions' }, submit,
      onCancel ? h('button', { type: 'button', 'data-testid': `${testid}-cancel`, onclick: onCancel }, 'Cancel') : null));

  async function send(ev) {
    ev.preventDefault();
    formError.textContent = '';
    for (const c of Object.values(controls)) setFieldError(c, '');
    const body = {};
    for (const [name, , kind] of FIELDS) {
      const raw = controls[name].value.trim();
      if (initial && raw === start[name]) continue;
      let v;
      try {
        v = parse(raw, kind);
      } catch (e) {
        setFieldError(controls[name], e.message);
        controls[name].focus();
        return;
      }
      if (v === null && !initial) continue;
      body[name] = v;
    }
    if (!initial && !body.name) {
      setFieldError(controls.name, 'A name is required.');
      controls.name.focus();
      return;
    }
    // A budget period only means something with a budget.
    if (initial && body.budget_usd === null && initial.budget_period != null) body.budget_period = null;
    submit.disabled = true;
    try {
      await onSubmit(body);
      if (!initial) form.reset();
    } catch (e) {
      const target = e instanceof ApiError && e.param ? controls[String(e.param).split(/[.[]/)[0]] : null;
      if (target) {
        setFieldError(target, e.message);
        target.focus();
      } else {
        formError.textContent = e.message;
      }
    } finally {
      submit.disabled = false;
    }
  }

  return { form, focus: () => controls.rpm.focus() };
}

function show(v, kind) {
  if (v === null || v === undefined) return '';
  if (kind === 'list') return v.join(', ');
  if (kind === 'tags') return Object.entries(v).map(([k, x]) => `${k}=${x}`).join(', ');
  return String(v);
}

function parse(raw, kind) {
  if (raw === '') return null;
  switch (kind) {
    case 'int': {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new Error('Enter a whole number of at least 1, or leave empty for no limit.');
      return n;
    }
    case 'money': {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0) throw new Error('Enter an amount in US dollars.');
      return n;
    }
    case 'list':
      return raw.split(',').map((x) => x.trim()).filter(Boolean);
    case 'tags': {
      const out = {};
      for (const pair of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
        const i = pair.indexOf('=');
        if (i <= 0) throw new Error('Use tag=value pairs separated by commas.');
        out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
      }
      return out;
    }
    default:
      return raw;
  }
}

/// The one place a secret is ever shown. It lives in the input's value (not
/// an attribute) and is wiped when the dialog closes.
function showSecret(k) {
  return new Promise((resolve) => {
    const titleId = nextId('secret');
    const input = h('input', { id: nextId('secret-value'), readonly: true, spellcheck: 'false', 'data-testid': 'secret-value', 'aria-label': 'New key secret' });
    input.value = k.key;
    const status = h('p', { role: 'status', class: 'muted', 'data-testid': 'secret-copy-status' });
    const copy = h('button', {
      type: 'button', class: 'primary', 'data-testid': 'secret-copy', 'aria-label': 'Copy the key to the clipboard',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(input.value);
          status.textContent = 'Copied to the clipboard.';
        } catch {
          input.focus();
          input.select();
          status.textContent = document.execCommand && document.execCommand('copy')
            ? 'Copied to the clipboard.'
            : 'Copying is not allowed here: the key is selected, press Ctrl+C (or ⌘C).';
        }
      },
    }, 'Copy');
    const dlg = h('dialog', { 'aria-labelledby': titleId, 'data-testid': 'secret-dialog' },
      h('h2', { id: titleId }, `Key “${k.name}” created`),
      h('p', { class: 'notice', role: 'note' }, h('strong', {}, 'Copy this key now: it will not be shown again.'),
        ' Switchyard stores only a hash of it.'),
      h('div', { class: 'secret-box' }, input, copy),
      status,
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'done', 'data-testid': 'secret-close' }, 'Done')));
    dlg.addEventListener('close', () => {
      input.value = '';
      dlg.remove();
      resolve();
    });
    document.body.append(dlg);
    dlg.showModal();
    copy.focus();
  });
}
