import { z } from 'zod';

/** The `policy` section of `bulwark.yaml`. */
export const policyConfigSchema = z.strictObject({
  /** Cedar policy files (`.cedar`), loaded in order; policy ids come from `@id("...")` or `file:index`. */
  files: z.array(z.string().min(1)).min(1),
  /** Cedar schema (`.cedarschema` text or `.json`); when set, policies are validated (strict mode) at load. */
  schemaFile: z.string().min(1).optional(),
  /** Namespace of the entity types: `<ns>::Client`, `<ns>::Model`, `<ns>::Action`. */
  namespace: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$/, 'a Cedar namespace such as Bulwark')
    .default('Bulwark'),
  /**
   * `auto`: decide with the compiled fast path when the policy set is within its subset, falling back to
   * cedar-wasm per request whenever it is unsure; `cedar-wasm`: every request through cedar-wasm.
   */
  engine: z.enum(['auto', 'cedar-wasm']).default('auto'),
  /** Model attributes known to the gateway operator (the resource's tenant), by model name. */
  models: z.record(z.string().min(1), z.strictObject({ tenant: z.string().min(1).optional() })).default({}),
});
/** The parsed `policy` section (defaults filled in). */
export type PolicyConfig = z.output<typeof policyConfigSchema>;
/** The `policy` section as written in YAML. */
export type PolicyConfigInput = z.input<typeof policyConfigSchema>;
