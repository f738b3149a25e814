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

export function buildProgram(opts: { json?: boolean } = {}): Command {
  // With --json, stderr holds only the JSON error runCli writes: commander's text line and its hint
  // would make it unparseable.
  const output = opts.json ? { outputError: () => {}, writeErr: () => {} } : { outputError: usageError };
  const hint = opts.json ? false : '(run with --help for usage)';
  const program = new Command('bulwark')
    .description(
      'Secure the whole life of a machine-learning model: data, training, model file, serving, audit.',
    )
    // Not commander's .version(): that one is honoured after any subcommand too, so that
    // `keys disable k --version 1` (for --key-version) printed the version and did nothing, exit 0.
    // runCli answers a leading --version; anywhere else it is refused (preAction below).
    .option('-V, --version', 'print the version and exit')
    .option('--json', 'machine-readable JSON output on stdout (errors as JSON on stderr)')
    .showHelpAfterError(hint)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput(output)
    .hook('preAction', () => {
      if (program.opts<{ version?: boolean }>().version)
        throw new BulwarkError(
          'ERR_USAGE',
          '--version is an option of bulwark itself (bulwark --version), not of a command',
          { details: { option: '--version' } },
        );
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
    c.showHelpAfterError(hint);
    c.configureOutput(output);
  }
  return program;
}

/**
 * Commander's own usage errors, prefixed with the stable code. An unknown option written with its value
 * (`--passphrase=hunter2`, `--pin=1234`) is echoed without the value: whoever typed a secret on the
 * command line should not find it in the terminal's scroll-back or a CI log too.
 */
function usageError(str: string, write: (s: string) => void): void {
  write(`bulwark: ERR_USAGE: ${redactOptionValues(str.replace(/^error: /, ''))}`);
}

export function redactOptionValues(message: string): string {
  return message.replace(/(--?[A-Za-z0-9][A-Za-z0-9-]*)=[^\s']*/g, '$1=…');
}

export function allCommands(c: Command): Command[] {
  return c.commands.flatMap((s) => [s, ...allCommands(s)]);
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const json = argv.includes('--json');
  const rest = argv.filter((a) => a !== '--json');
  if (rest.length === 1 && (rest[0] === '-V' || rest[0] === '--version')) {
    process.stdout.write(`${bulwarkVersion()}\n`);
    return ExitCode.ok;
  }
  const program = buildProgram({ json });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // A command group run without its subcommand (`bulwark data`): commander shows the help on
      // stderr as an error. It is a usage error, not a success.
      if (e.code === 'commander.help' && e.exitCode !== 0) {
        const message = 'a subcommand is needed (listed above, or with --help)';
        if (json) process.stderr.write(`${JSON.stringify({ error: { code: 'ERR_USAGE', message } })}\n`);
        else process.stderr.write(`bulwark: ERR_USAGE: ${message}\n`);
        return ExitCode.usage;
      }
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
        process.stderr.write(
          `${JSON.stringify({ error: { code: 'ERR_USAGE', message: redactOptionValues(e.message.replace(/^error: /, '')) } })}\n`,
        );
      return ExitCode.usage;
    }
    if (e instanceof BulwarkError || e instanceof Error) return reportError(e, json);
    return reportError(e, json);
  }
}
