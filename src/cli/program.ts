import { Command, CommanderError } from 'commander';
import { BulwarkError, bulwarkVersion } from '../core/index.js';
import { registerAttestCommands } from './commands/attest.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerBenchCommands } from './commands/bench.js';
import { registerDataCommands } from './commands/data.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerDeployCommands } from './commands/deploy.js';
import { registerEvaluateCommand } from './commands/evaluate.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerModelCommands } from './commands/model.js';
import { registerPlanCommand } from './commands/plan.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerPredictCommand } from './commands/predict.js';
import { registerQueryCommand } from './commands/query.js';
import { registerServeCommand } from './commands/serve.js';
import { registerTrainCommand } from './commands/train.js';
import { ExitCode, type Io, makeIo, reportError } from './output.js';

export { bulwarkVersion };

/** The `Io` of a running command, from the global `--json` flag. */
export function ioOf(cmd: Command): Io {
  return makeIo(cmd.optsWithGlobals<{ json?: boolean }>().json === true);
}

export function buildProgram(): Command {
  const program = new Command('bulwark')
    .description(
      'Secure the whole life of a machine-learning model: data, training, model file, serving, audit.',
    )
    .version(bulwarkVersion(), '-V, --version', 'print the version and exit')
    .option('--json', 'machine-readable JSON output on stdout (errors as JSON on stderr)')
    .showHelpAfterError('(run with --help for usage)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Commander's own usage errors come through here: prefix them with the stable code.
      outputError: (str, write) => write(`bulwark: ERR_USAGE: ${str.replace(/^error: /, '')}`),
    })
    .addHelpText(
      'after',
      `
Exit codes:
  0 ok · 1 failure · 2 usage (bad option or value) · 3 input data · 4 config · 5 security refusal · 6 service unavailable
Errors print one line "bulwark: ERR_CODE: message"; every code is listed in docs/errors.md.`,
    );

  registerDataCommands(program);
  registerAuditCommands(program);
  registerAttestCommands(program);
  registerBenchCommands(program);
  registerDemoCommand(program);
  registerDeployCommands(program);
  registerEvaluateCommand(program);
  registerKeysCommands(program);
  registerPlanCommand(program);
  registerPolicyCommands(program);
  registerModelCommands(program);
  registerTrainCommand(program);
  registerPredictCommand(program);
  registerQueryCommand(program);
  registerServeCommand(program);

  // Every subcommand inherits the usage-error handling.
  for (const c of allCommands(program)) {
    c.exitOverride();
    c.showHelpAfterError('(run with --help for usage)');
    c.configureOutput({
      outputError: (str, write) => write(`bulwark: ERR_USAGE: ${str.replace(/^error: /, '')}`),
    });
  }
  return program;
}

export function allCommands(c: Command): Command[] {
  return c.commands.flatMap((s) => [s, ...allCommands(s)]);
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help' ||
        e.exitCode === 0
      ) {
        return ExitCode.ok;
      }
      // Commander has already printed its message through outputError.
      if (json)
        process.stderr.write(`${JSON.stringify({ error: { code: 'ERR_USAGE', message: e.message } })}\n`);
      return ExitCode.usage;
    }
    if (e instanceof BulwarkError || e instanceof Error) return reportError(e, json);
    return reportError(e, json);
  }
}
