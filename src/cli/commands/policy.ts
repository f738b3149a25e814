import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, readInputFile } from '../../core/index.js';
import type { Principal } from '../../gateway/auth/index.js';
// The action names only (no engine): the Cedar engine is loaded by the commands that run it, not at
// start-up of every command.
import { ACTIONS, type Action } from '../../gateway/policy/types.js';
import { ioOf } from '../output.js';

/**
 * `bulwark policy check|eval`: the gateway's Cedar policies outside the gateway, for CI and for
 * answering "why was this request denied" (docs/gateway-auth.md).
 */

function actionOption(v: string): Action {
  if (!(ACTIONS as readonly string[]).includes(v))
    throw new InvalidArgumentError(`expected one of ${ACTIONS.join(', ')}, got "${v}"`);
  return v as Action;
}

/** `key=value`; the value is a number if it looks like one, a boolean for true/false, else a string. */
function contextOption(v: string, prev: Record<string, string | number | boolean> = {}) {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got "${v}"`);
  const key = v.slice(0, eq);
  const raw = v.slice(eq + 1);
  const value =
    raw === 'true' ? true : raw === 'false' ? false : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
  return { ...prev, [key]: value };
}

const list = (v: string) => v.split(',').filter((s) => s !== '');

async function principalFromFile(path: string): Promise<Principal> {
  const text = await readInputFile(path, 'principal', 'utf8');
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (e) {
    throw new BulwarkError('ERR_INVALID_ARGUMENT', `--principal ${path}: not JSON`, { cause: e });
  }
  const o = p as Partial<Principal>;
  if (typeof o !== 'object' || o === null || typeof o.id !== 'string')
    throw new BulwarkError(
      'ERR_INVALID_ARGUMENT',
      `--principal ${path}: expected an object with a string "id"`,
    );
  const strings = (x: unknown, name: string): string[] => {
    if (x === undefined) return [];
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string'))
      throw new BulwarkError(
        'ERR_INVALID_ARGUMENT',
        `--principal ${path}: "${name}" must be an array of strings`,
      );
    return x;
  };
  return {
    ...o,
    id: o.id,
    roles: strings(o.roles, 'roles'),
    scopes: strings(o.scopes, 'scopes'),
  } as Principal;
}

export function registerPolicyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description('Cedar policies of the gateway: validate them, evaluate a request');

  policy
    .command('check')
    .description('parse the policies and validate them against the schema (what the gateway does at start)')
    .argument('<files...>', 'Cedar policy files')
    .option('--schema <file>', 'Cedar schema (.cedarschema, or .json)')
    .option('--namespace <ns>', 'namespace of the entity types', 'Bulwark')
    .addHelpText(
      'after',
      '\nExit 4 (ERR_POLICY_INVALID) naming the file and policy when a policy does not parse or validate.',
    )
    .action(async function (this: Command, files: string[]) {
      const io = ioOf(this);
      const o = this.opts<{ schema?: string; namespace: string }>();
      const { Authorizer } = await import('../../gateway/policy/index.js');
      const a = await Authorizer.create({
        files,
        namespace: o.namespace,
        ...(o.schema === undefined ? {} : { schemaFile: o.schema }),
      });
      const out = {
        policies: a.policyIds,
        validated: o.schema !== undefined,
        engine: a.engine,
        ...(a.unsupportedReason === undefined ? {} : { compiledUnsupported: a.unsupportedReason }),
      };
      io.result(out, () =>
        [
          `${a.policyIds.length} policies ${o.schema === undefined ? 'parsed (no schema: not validated)' : `valid against ${o.schema}`}:`,
          ...a.policyIds.map((id) => `  ${id}`),
          `engine: ${a.engine}${a.unsupportedReason === undefined ? '' : ` (compiled path unsupported: ${a.unsupportedReason})`}`,
        ].join('\n'),
      );
    });

  policy
    .command('eval')
    .description('decide one request with the policies, as the gateway would')
    .argument('<files...>', 'Cedar policy files')
    .option('--schema <file>', 'Cedar schema (.cedarschema, or .json)')
    .option('--namespace <ns>', 'namespace of the entity types', 'Bulwark')
    .requiredOption('--action <action>', `one of ${ACTIONS.join(', ')}`, actionOption)
    .requiredOption('--model <name>', 'the model (resource)')
    .option('--model-version <v>', 'model version')
    .option('--model-tenant <tenant>', 'the model tenant')
    .option(
      '--principal <file>',
      'the principal as JSON ({"id", "tenant", "roles", "scopes", "spiffeId", ...})',
    )
    .option('--id <id>', 'principal id (without --principal)', 'cli')
    .option('--tenant <tenant>', 'principal tenant (without --principal)')
    .option('--roles <list>', 'principal roles, comma-separated (without --principal)', list)
    .option('--scopes <list>', 'principal scopes, comma-separated (without --principal)', list)
    .option('--spiffe-id <id>', 'principal SPIFFE id (without --principal)')
    .option(
      '--context <key=value>',
      'a context value (repeatable): numbers, true/false, or strings',
      contextOption,
    )
    .addHelpText(
      'after',
      `
Exit 0 when allowed; 5 (ERR_POLICY_DENIED) when denied, naming the forbid policies;
6 (ERR_POLICY_ENGINE) when the engine could not evaluate; 4 (ERR_POLICY_INVALID) for bad policies.
Example: bulwark policy eval examples/gateway/policies.cedar --schema examples/gateway/bulwark.cedarschema \\
  --action predict --model fraud --model-tenant acme --tenant acme --scopes predict --context riskScore=0.95`,
    )
    .action(async function (this: Command, files: string[]) {
      const io = ioOf(this);
      const o = this.opts<{
        schema?: string;
        namespace: string;
        action: Action;
        model: string;
        modelVersion?: string;
        modelTenant?: string;
        principal?: string;
        id: string;
        tenant?: string;
        roles?: string[];
        scopes?: string[];
        spiffeId?: string;
        context?: Record<string, string | number | boolean>;
      }>();
      const { Authorizer, decisionError } = await import('../../gateway/policy/index.js');
      const a = await Authorizer.create({
        files,
        namespace: o.namespace,
        ...(o.schema === undefined ? {} : { schemaFile: o.schema }),
      });
      const principal: Principal =
        o.principal !== undefined
          ? await principalFromFile(o.principal)
          : {
              id: o.spiffeId ?? o.id,
              roles: o.roles ?? [],
              scopes: o.scopes ?? [],
              ...(o.tenant === undefined ? {} : { tenant: o.tenant }),
              ...(o.spiffeId === undefined ? {} : { spiffeId: o.spiffeId }),
            };
      const d = a.authorize({
        principal,
        action: o.action,
        resource: {
          model: o.model,
          ...(o.modelVersion === undefined ? {} : { version: o.modelVersion }),
          ...(o.modelTenant === undefined ? {} : { tenant: o.modelTenant }),
        },
        context: o.context ?? {},
      });
      const err = decisionError(d, o.action);
      if (err !== undefined) {
        // A context value of the wrong type for the schema is what the user typed, not the engine
        // failing: a usage error naming --context (the gateway, which builds the context itself, denies).
        if (d.errors.length > 0 && d.errors.every((e) => e.startsWith('context ')))
          throw new BulwarkError('ERR_USAGE', `--context: ${d.errors.join('; ')}`, {
            details: { option: '--context' },
          });
        if (d.errors.length > 0) io.note(`bulwark: policy engine errors: ${d.errors.join('; ')}`);
        throw err;
      }
      io.result(d, () => `allow: ${o.action} on ${o.model}, permitted by ${d.reasons.join(', ')}`);
    });
}
