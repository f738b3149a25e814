import { Command, CommanderError } from 'commander';
import { BulwarkError, bulwarkVersion } from '../core/index.js';
import { ExitCode, ioOf, reportError } from './output.js';

// Commands take ioOf from output.ts: importing this module would load every command's module.
export { bulwarkVersion, ioOf };

type Register = (program: Command) => void;

/**
 * The top-level commands, in the order `bulwark --help` lists them, each with the module that
 * registers it. Loaded on demand: a command's module pulls in what it runs (data readers, ONNX, the
 * privacy ledger...), and loading every one of them cost most of a second before any command ran.
 */
export const COMMAND_MODULES: ReadonlyArray<readonly [name: string, load: () => Promise<Register>]> = [
  ['data', async () => (await import('./commands/data.js')).registerDataCommands],
  ['audit', async () => (await import('./commands/audit.js')).registerAuditCommands],
  ['attest', async () => (await import('./commands/attest.js')).registerAttestCommands],
  ['bench', async () => (await import('./commands/bench.js')).registerBenchCommands],
  ['demo', async () => (await import('./commands/demo.js')).registerDemoCommand],
  ['deploy', async () => (await import('./commands/deploy.js')).registerDeployCommands],
  ['evaluate', async () => (await import('./commands/evaluate.js')).registerEvaluateCommand],
  ['keys', async () => (await import('./commands/keys.js')).registerKeysCommands],
  ['plan', async () => (await import('./commands/plan.js')).registerPlanCommand],
  ['policy', async () => (await import('./commands/policy.js')).registerPolicyCommands],
  ['model', async () => (await import('./commands/model.js')).registerModelCommands],
  ['train', async () => (await import('./commands/train.js')).registerTrainCommand],
  ['predict', async () => (await import('./commands/predict.js')).registerPredictCommand],
  ['query', async () => (await import('./commands/query.js')).registerQueryCommand],
  ['serve', async () => (await import('./commands/serve.js')).registerServeCommand],
];

/**
 * The `bulwark` program with every command, or with `only` the top-level command named (what
 * {@link runCli} builds when the command line names one: the others' modules are not loaded).
 */
export async function buildProgram(opts: { json?: boolean; only?: string } = {}): Promise<Command> {
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

  const wanted = COMMAND_MODULES.filter(([name]) => opts.only === undefined || name === opts.only);
  for (const register of await Promise.all(wanted.map(([, load]) => load()))) register(program);

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
  // The first word that is not an option names the command (the global options take no value).
  const first = rest.find((a) => !a.startsWith('-'));
  const only = COMMAND_MODULES.some(([name]) => name === first) ? first : undefined;
  const program = await buildProgram(only === undefined ? { json } : { json, only });
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
