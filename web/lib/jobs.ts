/**
 * Runs a QMP block job with a progress bar: progress from query-jobs (polled), the job's end
 * from its events (JOB_STATUS_CHANGE 'ready' and 'concluded'; the error, if any, from
 * BLOCK_JOB_COMPLETED, as QEMU reports it there).
 */
import type { BlockgraphClient, QmpEvent } from '../../src/client/index.ts';
import type { Progress } from './feedback.ts';

const POLL_MS = 250;

interface JobInfo {
  id: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
}

/**
 * Starts the job `id` with `start` and resolves once it concluded; rejects with the job's error
 * text. `onReady` runs when the job is ready (mirror: job-complete or job-cancel decide its end).
 */
export async function runJob(
  client: BlockgraphClient,
  id: string,
  start: () => Promise<unknown>,
  progress: Progress,
  onReady?: () => Promise<unknown>,
): Promise<void> {
  let error: string | undefined;
  let concluded!: () => void;
  const done = new Promise<void>((resolve) => (concluded = resolve));
  const ready = new Promise<unknown>((resolve) => {
    const stop = client.onEvent((e: QmpEvent) => {
      const data = e.data ?? {};
      const mine = data.id === id || data.device === id;
      if (!mine) return;
      if (e.event === 'BLOCK_JOB_COMPLETED' && typeof data.error === 'string') error = data.error;
      if (e.event !== 'JOB_STATUS_CHANGE') return;
      if (data.status === 'ready') resolve(onReady?.());
      if (data.status === 'concluded') {
        stop();
        concluded();
      }
    });
  });
  const poll = setInterval(() => void showProgress(client, id, progress), POLL_MS);
  try {
    await start();
    // A job-complete/job-cancel that fails leaves the job running: say so instead of waiting.
    await Promise.race([done, ready.then(() => done)]);
  } finally {
    clearInterval(poll);
  }
  if (error !== undefined) throw new Error(error);
}

async function showProgress(client: BlockgraphClient, id: string, progress: Progress): Promise<void> {
  const jobs = await client.execute<JobInfo[]>('query-jobs').catch(() => []);
  const job = jobs.find((j) => j.id === id);
  if (!job) return;
  const total = Math.max(job['total-progress'], 1);
  const pct = Math.floor((job['current-progress'] * 100) / total);
  progress.update(job['current-progress'], total, `${id}: ${job.status}, ${pct} %`);
}
