import type { Command } from 'commander';

/** `bulwark data synth` (filled in by the synthetic-transactions generator). */
export function registerDataSynthCommand(_data: Command): void {}
