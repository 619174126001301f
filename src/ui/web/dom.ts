// A few DOM helpers. Text is always set as text (never as HTML), so nothing a
// server or a user typed can become markup; the CSP forbids inline script and
// style anyway.

type Listener = (ev: Event) => void;
export type Attrs = Record<string, string | number | boolean | null | undefined | Listener>;
export type Child = Node | string | number | null | undefined | false | Child[];

/** An element: `on*` attributes become listeners, `true` an empty attribute, null/undefined/false nothing. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'value') (el as HTMLInputElement).value = String(v);
    else if (k === 'checked') (el as HTMLInputElement).checked = true;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replace an element's content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let seq = 0;
export const newId = (prefix: string) => `${prefix}-${++seq}`;

/** A labelled form control: `<label for>` + the control, in one row. */
export function field(label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string): HTMLElement {
  control.id ||= newId('f');
  const hintEl = hint ? h('small', { id: `${control.id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h(
    'div',
    { class: control instanceof HTMLInputElement && control.type === 'checkbox' ? 'field check' : 'field' },
    h('label', { for: control.id }, label),
    control,
    hintEl,
  );
}

export function select(options: [value: string, label: string][], value: string, attrs: Attrs = {}): HTMLSelectElement {
  return h(
    'select',
    attrs,
    options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)),
  );
}

export function table(caption: string, headers: string[], rows: Child[][], empty = 'None.'): HTMLElement {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    null,
    h('caption', { class: 'visually-hidden' }, caption),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        headers.map((x) => h('th', { scope: 'col' }, x)),
      ),
    ),
    h(
      'tbody',
      null,
      rows.map((r) =>
        h(
          'tr',
          null,
          r.map((c) => h('td', null, c)),
        ),
      ),
    ),
  );
}

/** A definition list of label/value pairs. */
export function facts(pairs: [string, Child][]): HTMLElement {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]),
  );
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function fmtDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const hh = Math.floor((seconds % 86400) / 3600);
  const mm = Math.floor((seconds % 3600) / 60);
  const ss = Math.floor(seconds % 60);
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : t.toLocaleString();
}

/** A status word as a badge: the class carries its colour, the text its meaning. */
export function badge(status: string): HTMLElement {
  const tone = /^(active|ok|completed|enabled|local)$/.test(status) ? 'good' : /down|fail|unreachable|raised/.test(status) ? 'bad' : 'busy';
  return h('span', { class: `badge ${tone}` }, status);
}

/** A REST error shown next to the control that caused it: its description, and its code for the curious. */
export function errorMessage(err: unknown): HTMLElement {
  const e = err as { description?: string; message?: string; code?: string };
  return h('p', { role: 'alert', class: 'error' }, e.message ?? String(err), e.code ? h('span', { class: 'code' }, ` (${e.code})`) : null);
}

/** A polite live message (role="status"). */
export function note(text: Child, tone: 'info' | 'good' = 'info'): HTMLElement {
  return h('p', { role: 'status', class: `note ${tone}` }, text);
}

/** Call `fn` now and then every `ms` until stopped; a slow call is never overlapped. */
export function every(ms: number, fn: () => Promise<void>): () => void {
  let stopped = false;
  let timer: number | undefined;
  const tick = async () => {
    try {
      await fn();
    } catch (err) {
      console.error(err); // pages show their own refresh errors; this is a bug's last resort
    } finally {
      if (!stopped) timer = window.setTimeout(tick, ms);
    }
  };
  void tick();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
