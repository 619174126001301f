// What the shell gives a page, and what a page gives back.
export interface AppContext {
  clusterName: string;
  /** Go to a page, with a message to show at its top. */
  navigate(hash: string, message?: string): void;
}

export interface Page {
  title: string;
  el: HTMLElement;
  /** Stop timers and requests when the user leaves the page. */
  dispose?(): void;
}

/** Every page that watches the cluster refreshes this often. */
export const REFRESH_MS = 5000;
