// The Cluster Manager page: sign-in, the shell (header, navigation) and a
// hash router over the pages. Every page is a client of the REST resources
// on this same origin (see ../server.ts).
import './style.css';
import { ApiError, call, currentSession, onSessionEnded, signIn, signOut } from './api.js';
import { errorMessage, fill, h } from './dom.js';
import type { ClusterInfo, SessionInfo } from './types.js';
import type { AppContext, Page } from './pages/page.js';
import { clusterPage } from './pages/cluster.js';
import { nodesPage } from './pages/nodes.js';
import { databasesPage } from './pages/databases.js';
import { databasePage } from './pages/database.js';
import { certificatesPage } from './pages/certificates.js';
import { alertsPage } from './pages/alerts.js';

const root = document.getElementById('app')!;

const NAV: [hash: string, label: string][] = [
  ['#/cluster', 'Cluster'],
  ['#/nodes', 'Nodes'],
  ['#/databases', 'Databases'],
  ['#/certificates', 'Certificates'],
  ['#/alerts', 'Alerts'],
];

function route(hash: string, ctx: AppContext): Page {
  const db = /^#\/databases\/(\d+)$/.exec(hash);
  if (db) return databasePage(ctx, Number(db[1]));
  switch (hash) {
    case '#/nodes':
      return nodesPage(ctx);
    case '#/databases':
      return databasesPage(ctx);
    case '#/certificates':
      return certificatesPage(ctx);
    case '#/alerts':
      return alertsPage(ctx);
    default:
      return clusterPage(ctx);
  }
}

let current: Page | undefined;
let stopRouting: (() => void) | undefined;

function showSignIn(message?: string): void {
  current?.dispose?.();
  current = undefined;
  stopRouting?.();
  stopRouting = undefined;
  document.title = 'Sign in · Tessera Cluster Manager';
  const email = h('input', {
    id: 'signin-email',
    name: 'username',
    type: 'text',
    inputmode: 'email',
    autocomplete: 'username',
    required: true,
    autofocus: true,
  });
  const password = h('input', {
    id: 'signin-password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const feedback = h('div', { class: 'feedback' }, message ? h('p', { role: 'status', class: 'note info' }, message) : null);
  const form = h(
    'form',
    { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Tessera Cluster Manager: sign in with the cluster’s admin user.'),
    h('div', { class: 'field' }, h('label', { for: email.id }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: password.id }, 'Password'), password),
    feedback,
    button,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    fill(feedback);
    try {
      const s = await signIn(email.value.trim(), password.value);
      await showApp(s);
    } catch (err) {
      const wrong = err instanceof ApiError && err.status === 401;
      fill(feedback, wrong ? h('p', { role: 'alert', class: 'error' }, 'Wrong email or password.') : errorMessage(err));
      password.value = '';
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(root, h('main', { class: 'signin-page' }, form));
  email.focus();
}

async function showApp(session: SessionInfo): Promise<void> {
  let cluster: ClusterInfo | undefined;
  try {
    cluster = await call<ClusterInfo>('GET', '/v1/cluster');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // showSignIn already ran
  }
  const main = h('main', { id: 'main', tabindex: '-1' });
  const links = NAV.map(([hash, label]) => h('a', { href: hash }, label));
  const signOutButton = h('button', { type: 'button', class: 'quiet' }, 'Sign out');
  signOutButton.addEventListener('click', async () => {
    signOutButton.disabled = true;
    try {
      await signOut();
    } catch {
      // the session is gone either way (expired, or this node is down); the page forgets it
    }
    location.hash = '';
    showSignIn('You are signed out.');
  });
  fill(
    root,
    h(
      'header',
      { class: 'top' },
      h('span', { class: 'brand' }, 'Tessera'),
      h('span', { class: 'cluster-name', title: 'cluster name' }, cluster?.name ?? ''),
      h('span', { class: 'spacer' }),
      h('span', { class: 'user' }, session.username),
      signOutButton,
    ),
    h(
      'nav',
      { 'aria-label': 'Main' },
      h(
        'ul',
        null,
        links.map((a) => h('li', null, a)),
      ),
    ),
    main,
  );

  let flash: string | undefined;
  const ctx: AppContext = {
    clusterName: cluster?.name ?? '',
    navigate: (hash, message) => {
      flash = message;
      if (location.hash === hash) render();
      else location.hash = hash;
    },
  };
  const render = () => {
    current?.dispose?.();
    const hash = location.hash || '#/cluster';
    for (const a of links) {
      const on = hash === a.getAttribute('href') || hash.startsWith(`${a.getAttribute('href')}/`);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    current = route(hash, ctx);
    const message = flash;
    flash = undefined;
    fill(main, message ? h('p', { role: 'status', class: 'note good' }, message) : null, current.el);
    document.title = `${current.title} · Tessera Cluster Manager`;
  };
  window.addEventListener('hashchange', render);
  stopRouting = () => window.removeEventListener('hashchange', render);
  render();
}

onSessionEnded((why) => showSignIn(why));

async function boot(): Promise<void> {
  try {
    const s = await currentSession();
    if (s) await showApp(s);
    else showSignIn();
  } catch (err) {
    fill(
      root,
      h('main', { class: 'signin-page' }, h('div', { class: 'card' }, h('h1', null, 'Tessera Cluster Manager'), errorMessage(err))),
    );
  }
}

void boot();
