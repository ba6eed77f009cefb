/**
 * One logical HTTP request with QEMU curl's `timeout` (for the whole transfer, as
 * CURLOPT_TIMEOUT) plus blockgraph's `retries`: a retryable failure (network error, timeout,
 * 5xx, 408, 429) is tried again after 100 ms, 200 ms, 400 ms, ... Every attempt holds a slot of
 * the node's Limiter while it runs, not while it waits to retry.
 */
import { HttpFailure, networkFailure, statusFailure, timeoutFailure } from './errors.ts';
import type { Limiter } from './limiter.ts';

const BACKOFF_MS = 100;

export interface RequestPolicy {
  /** Per attempt, for the whole transfer; 0 for no limit. */
  readonly timeoutMs: number;
  readonly retries: number;
  readonly limiter: Limiter;
  /** Headers sent with every request (the `cookie` option). */
  readonly headers: Readonly<Record<string, string>>;
  /** Aborted when the node closes: requests in flight stop, none start. */
  readonly closed: AbortSignal;
}

/**
 * GETs (or HEADs) `url` and hands the response to `consume`, which reads the body and may throw
 * an HttpFailure. Non-2xx statuses other than 416 never reach `consume`. Resolves to what
 * `consume` returns; rejects with the last HttpFailure once the retries are used up.
 */
export async function fetchWithRetry<T>(
  url: string,
  init: { method?: string; headers?: Record<string, string> },
  policy: RequestPolicy,
  consume: (res: Response) => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await policy.limiter.run(() => fetchOnce(url, init, policy, consume));
    } catch (err) {
      if (!(err instanceof HttpFailure) || !err.retryable || attempt >= policy.retries) throw err;
      if (policy.closed.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS * 2 ** attempt));
    }
  }
}

async function fetchOnce<T>(
  url: string,
  init: { method?: string; headers?: Record<string, string> },
  policy: RequestPolicy,
  consume: (res: Response) => Promise<T>,
): Promise<T> {
  if (policy.closed.aborted) throw new HttpFailure('the node was closed', false);
  const timer = new AbortController();
  const timeout = policy.timeoutMs > 0 ? setTimeout(() => timer.abort(), policy.timeoutMs) : undefined;
  const signal = AbortSignal.any([timer.signal, policy.closed]);
  try {
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      // Asks Node's fetch not to compress (browsers ignore it: the header is theirs to set).
      headers: { 'Accept-Encoding': 'identity', ...policy.headers, ...init.headers },
      // Our own cache holds what was read; the browser's must not mix two versions of a file.
      cache: 'no-store',
      redirect: 'follow',
      signal,
    });
    try {
      if (!res.ok && res.status !== 416) throw statusFailure(res.status);
      return await consume(res);
    } catch (err) {
      await res.body?.cancel().catch(() => {});
      throw err;
    }
  } catch (err) {
    if (timer.signal.aborted) throw timeoutFailure(policy.timeoutMs / 1000);
    if (policy.closed.aborted) throw new HttpFailure('the node was closed', false);
    if (err instanceof HttpFailure) throw err;
    throw networkFailure(url, err);
  } finally {
    clearTimeout(timeout);
  }
}
