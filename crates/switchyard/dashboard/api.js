// Every call to the admin server goes through here: same-origin cookie, the
// CSRF token on state-changing calls, JSON in and out, and a 401 anywhere
// sends the operator to the sign-in page.

let csrf = '';

export class ApiError extends Error {
  constructor(status, message, type, param) {
    super(message);
    this.status = status;
    this.type = type || null;
    this.param = param || null;
  }
}

export function toLogin() {
  const next = location.hash && location.hash !== '#/' ? '?next=' + encodeURIComponent(location.hash) : '';
  location.assign('/login' + next);
}

/// Reads the session; without one, goes to /login (and never resolves).
export async function loadSession() {
  const res = await fetch('/admin/session', { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (res.status === 401) {
    toLogin();
    return new Promise(() => {});
  }
  if (!res.ok) throw new ApiError(res.status, `Session check failed (HTTP ${res.status})`);
  const s = await res.json();
  csrf = s.csrf;
  return s;
}

export async function signOut() {
  try {
    await fetch('/admin/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'x-csrf-token': csrf } });
  } finally {
    csrf = '';
    location.assign('/login');
  }
}

/// `query` is an object or a list of [name, value] pairs (for repeated or
/// dotted names such as metadata.team); empty values are left out.
export async function api(path, { method = 'GET', query, body } = {}) {
  const url = new URL(path, location.origin);
  const pairs = Array.isArray(query) ? query : Object.entries(query || {});
  for (const [k, v] of pairs) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.append(k, String(v));
  }
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'The admin server did not answer.');
  }
  if (res.status === 401) {
    toLogin();
    throw new ApiError(401, 'Signed out.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const e = data && data.error;
    throw new ApiError(res.status, (e && e.message) || `HTTP ${res.status}`, e && e.type, e && e.param);
  }
  return data;
}
