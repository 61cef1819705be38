interface Group<T> {
  readonly members: Set<T>;
  readonly listener: () => void;
}

/**
 * One 'abort' listener per signal, however many requests share it. A listener per request makes
 * every add and remove walk the signal's listener list (tens of thousands of requests on one
 * signal run several times slower) and makes Node.js print `MaxListenersExceededWarning`.
 * Groups leave with their last member, so nothing outlives the requests.
 */
export class SharedAbortListeners<T> {
  private readonly groups = new Map<AbortSignal, Group<T>>();

  constructor(private readonly onAbort: (member: T, signal: AbortSignal) => void) {}

  /** Signals with at least one member, for tests and diagnostics. */
  get signals(): number {
    return this.groups.size;
  }

  add(signal: AbortSignal, member: T): void {
    let group = this.groups.get(signal);
    if (group === undefined) {
      const members = new Set<T>();
      const listener = () => {
        this.groups.delete(signal);
        for (const each of members) this.onAbort(each, signal);
      };
      group = { members, listener };
      this.groups.set(signal, group);
      signal.addEventListener('abort', listener, { once: true });
    }
    group.members.add(member);
  }

  delete(signal: AbortSignal, member: T): void {
    const group = this.groups.get(signal);
    if (group === undefined || !group.members.delete(member)) return;
    if (group.members.size === 0) {
      this.groups.delete(signal);
      signal.removeEventListener('abort', group.listener);
    }
  }
}
