// The sign-in form. The token goes only into the POST body; on success the
// server sets an HttpOnly session cookie and the token is forgotten here.

const form = document.getElementById('login-form');
const input = document.getElementById('token');
const error = document.getElementById('login-error');

// Only a dashboard route may follow sign-in, never another site.
function destination() {
  const next = new URLSearchParams(location.search).get('next') || '';
  return /^#\/[\w\-./?=&%]*$/.test(next) ? '/' + next : '/';
}

async function alreadySignedIn() {
  try {
    const res = await fetch('/admin/session', { credentials: 'same-origin' });
    if (res.ok) location.replace(destination());
  } catch { /* stay on the form */ }
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.textContent = '';
  const token = input.value.trim();
  if (!token) {
    error.textContent = 'Enter the admin token.';
    input.focus();
    return;
  }
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const res = await fetch('/admin/session', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    if (res.ok) {
      input.value = '';
      location.replace(destination());
      return;
    }
    error.textContent = res.status === 401
      ? 'That token is not valid.'
      : `Sign-in failed (HTTP ${res.status}).`;
  } catch {
    error.textContent = 'The admin server did not answer.';
  } finally {
    button.disabled = false;
  }
  input.select();
});

alreadySignedIn();
input.focus();
