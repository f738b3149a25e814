import type { Command } from 'commander';

/** `bulwark data schema FILE` and related commands (filled in by the data layer). */
export function registerDataSchemaCommands(_data: Command): void {}
