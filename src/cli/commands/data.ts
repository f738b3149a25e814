import type { Command } from 'commander';
import { registerDataInspectCommand } from './data-inspect.js';
import { registerDataPoisonCommand } from './data-poison.js';
import { registerDataProtectCommands } from './data-protect.js';
import { registerDataSchemaCommands } from './data-schema.js';
import { registerDataSynthCommand } from './data-synth.js';

/** `bulwark data ...`: reading, describing and generating data sets. */
export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('read, describe, check and generate data sets');
  registerDataSchemaCommands(data);
  registerDataSynthCommand(data);
  registerDataProtectCommands(data);
  registerDataInspectCommand(data);
  registerDataPoisonCommand(data);
}
