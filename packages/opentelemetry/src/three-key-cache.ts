/**
 * Values by three string keys, in nested maps: a per-message lookup builds no key string. Bounded:
 * past `max` values (or when `make` gives none to keep) `make` runs per lookup instead.
 */
export class ThreeKeyCache<V> {
  private readonly values = new Map<string, Map<string, Map<string, V>>>();
  private size = 0;

  constructor(
    private readonly max: number,
    /** The value for the keys, and whether to keep it. */
    private readonly make: (a: string, b: string, c: string) => { value: V; keep: boolean },
  ) {}

  get(a: string, b: string, c: string): V {
    let byB = this.values.get(a);
    if (byB === undefined) {
      byB = new Map();
      this.values.set(a, byB);
    }
    let byC = byB.get(b);
    if (byC === undefined) {
      byC = new Map();
      byB.set(b, byC);
    }
    const found = byC.get(c);
    if (found !== undefined) return found;
    const { value, keep } = this.make(a, b, c);
    if (keep && this.size < this.max) {
      byC.set(c, value);
      this.size++;
    }
    return value;
  }
}
