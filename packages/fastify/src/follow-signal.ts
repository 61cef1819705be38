const nothing = () => {};

/**
 * Aborts `controller` when `signal` aborts (at once if it already has), with its reason; returns
 * what unlinks them. One listener per web request, cheaper than `AbortSignal.any`.
 */
export function followSignal(
  controller: AbortController,
  signal: AbortSignal | undefined,
): () => void {
  if (signal === undefined) return nothing;
  if (signal.aborted) {
    controller.abort(signal.reason);
    return nothing;
  }
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
