import cliProgress from 'cli-progress';
import type { Io } from './output.js';

/** A progress reporter; library code takes the `onProgress` callback, the CLI draws it. */
export interface Progress {
  /** Sets the amount done (same unit as `total`). */
  update(done: number, extra?: Record<string, string | number>): void;
  /** Finishes the bar (idempotent). */
  stop(): void;
}

/**
 * A progress bar on stderr when the terminal is interactive; a no-op otherwise (`--json`, CI, pipes), so
 * scripted output stays clean.
 */
export function startProgress(io: Io, label: string, total: number, unit = ''): Progress {
  if (!io.interactive || total <= 0) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {value}/{total}${unit ? ` ${unit}` : ''} | {eta_formatted} left{info}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { info: '' });
  let stopped = false;
  return {
    update(done, extra) {
      const info = extra
        ? ` | ${Object.entries(extra)
            .map(([k, v]) => `${k} ${v}`)
            .join(' ')}`
        : '';
      bar.update(Math.min(done, total), { info });
    },
    stop() {
      if (!stopped) {
        stopped = true;
        bar.stop();
      }
    },
  };
}

/** Runs `work` with a bar, stopping the bar however `work` ends. */
export async function withProgress<T>(
  io: Io,
  label: string,
  total: number,
  work: (p: Progress) => Promise<T>,
  unit = '',
): Promise<T> {
  const p = startProgress(io, label, total, unit);
  try {
    return await work(p);
  } finally {
    p.stop();
  }
}
