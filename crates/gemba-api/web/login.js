// Signing in (POST /api/v1/auth/login sets an HttpOnly session cookie), changing a one-time
// password, and signing out. See docs/SECURITY.md.
import { t } from './i18n.js';
import { h, tr } from './ui.js';

/** The signed-in principal, or null when the server answers 401. */
export async function whoAmI() {
  const r = await fetch('/api/v1/auth/me');
  if (r.status === 401) return null;
  if (!r.ok) throw new Error(`${r.status}`);
  return r.json();
}

async function post(url, body) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch { /* empty */ }
  return { ok: r.ok, status: r.status, data };
}

function field(key, name, type, autocomplete) {
  return h('label.field', {}, tr('span', key),
    h('input', { name, type, autocomplete, required: true, 'data-testid': `login-${name}` }));
}

/** Shows the sign-in form in `main` until a user is signed in with a password of their own. */
export async function signIn(main) {
  let me = await whoAmI();
  while (!me || me.must_change_password) {
    me = me ? await changePassword(main, me) : await loginForm(main);
  }
  return me;
}

function loginForm(main) {
  return new Promise((resolve) => {
    const msg = h('p.error', { 'data-testid': 'login-error' });
    const form = h('form.login', { 'data-testid': 'login-form' },
      tr('h2', 'auth.title'),
      field('auth.user', 'user', 'text', 'username'),
      field('auth.password', 'password', 'password', 'current-password'),
      h('button', { type: 'submit', 'data-testid': 'login-submit' }, t('auth.submit')),
      msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const r = await post('/api/v1/auth/login', { user: fd.get('user'), password: fd.get('password') });
      if (r.ok) resolve(await whoAmI());
      else msg.textContent = r.status === 429 ? t('auth.too_many') : t('auth.failed');
    });
    main.replaceChildren(form);
    form.querySelector('input').focus();
  });
}

function changePassword(main, me) {
  return new Promise((resolve) => {
    const msg = h('p.error', { 'data-testid': 'password-error' });
    const form = h('form.login', { 'data-testid': 'password-form' },
      tr('h2', 'auth.change_title'),
      h('p', {}, t('auth.change_note', { user: me.name })),
      field('auth.old', 'old', 'password', 'current-password'),
      field('auth.new', 'new', 'password', 'new-password'),
      field('auth.new_again', 'again', 'password', 'new-password'),
      h('button', { type: 'submit', 'data-testid': 'password-submit' }, t('auth.change_submit')),
      msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      if (fd.get('new') !== fd.get('again')) { msg.textContent = t('auth.mismatch'); return; }
      const r = await post('/api/v1/auth/password', { old: fd.get('old'), new: fd.get('new') });
      if (!r.ok) { msg.textContent = r.data?.error?.message || `${r.status}`; return; }
      // Changing the password ends every session: sign in again with the new one.
      const again = await post('/api/v1/auth/login', { user: me.name, password: fd.get('new') });
      resolve(again.ok ? await whoAmI() : null);
    });
    main.replaceChildren(form);
    form.querySelector('input').focus();
  });
}

/** The user's name, role and a sign-out button for the header. */
export function userBadge(me) {
  if (me.kind === 'anonymous') return h('span.user', { 'data-testid': 'user' }, t('auth.off'));
  const out = h('button.link', {
    'data-testid': 'logout',
    onclick: async () => {
      await post('/api/v1/auth/logout', {});
      location.reload();
    },
  }, t('auth.signout'));
  return h('span.user', { 'data-testid': 'user' }, `${me.name} (${t(`role.${me.role}`)}) `, out);
}
