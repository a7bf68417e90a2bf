/** Cancellation: an AbortSignal is checked between steps; the event loop gets a turn each step so it can fire. */
export function abortError(message = 'Training cancelled'): Error {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError();
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
