import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { BulwarkError, readInputFile } from '../../core/index.js';
import type { Finding, Severity } from '../../deploy/index.js';
import { ioOf } from '../output.js';

/** The deploy library, loaded on first use (kubernetes-models is large). */
const lib = () => import('../../deploy/index.js');

const SEVERITY_NAMES = ['info', 'low', 'medium', 'high', 'critical'] as const;

function severityOption(v: string): Severity {
  if (!(SEVERITY_NAMES as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`expected one of ${SEVERITY_NAMES.join(', ')}, got "${v}"`);
  }
  return v as Severity;
}

function levelOption(v: string): 'baseline' | 'restricted' {
  if (v !== 'baseline' && v !== 'restricted')
    throw new InvalidArgumentError(`expected baseline or restricted, got "${v}"`);
  return v;
}

function table(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'no findings';
  const rows = findings.map((f) => [
    f.severity.toUpperCase(),
    f.rule,
    `${f.object.kind}/${f.object.namespace ? `${f.object.namespace}/` : ''}${f.object.name}`,
    f.path,
  ]);
  const widths = [0, 1, 2].map((i) =>
    Math.max(...rows.map((r) => r[i]!.length), ['SEVERITY', 'RULE', 'OBJECT'][i]!.length),
  );
  const pad = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ');
  const lines = [pad(['SEVERITY', 'RULE', 'OBJECT', 'FIELD'])];
  findings.forEach((f, i) => {
    lines.push(pad(rows[i]!));
    lines.push(`${' '.repeat(widths[0]! + 2)}${f.message}; fix: ${f.fix}`);
  });
  return lines.join('\n');
}

/**
 * The most `deploy check` reads of one input, a file or stdin (64 MiB): a rendered overlay is a few
 * MiB at most; the YAML parser's memory is a multiple of its input.
 */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

function tooLarge(file: string): BulwarkError {
  return new BulwarkError(
    'ERR_INPUT_TOO_LARGE',
    `${file === '-' ? 'stdin' : file}: over the ${MAX_MANIFEST_BYTES}-byte (64 MiB) limit of one deploy check input; split the manifests into several files`,
    { details: { file, limit: MAX_MANIFEST_BYTES } },
  );
}

/** Reads stdin up to MAX_MANIFEST_BYTES; stops reading and refuses (ERR_INPUT_TOO_LARGE) beyond. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of process.stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    total += b.length;
    if (total > MAX_MANIFEST_BYTES) {
      process.stdin.destroy();
      throw tooLarge('-');
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readManifestFile(f: string): Promise<string> {
  const st = await stat(f).catch(() => null);
  // A missing or odd path is readInputFile's to report; a regular file is measured before it is read.
  if (st?.isFile() === true && st.size > MAX_MANIFEST_BYTES) throw tooLarge(f);
  return readInputFile(f, 'manifest', 'utf8');
}

export function registerDeployCommands(program: Command): void {
  const deploy = program
    .command('deploy')
    .description(
      'Kubernetes: generate a hardened Kustomize base for the gateway; check manifests against Pod Security',
    );

  deploy
    .command('k8s')
    .description(
      'write a Kustomize base (Namespace, Deployment, Service, PDB, HPA, NetworkPolicies) for the gateway',
    )
    .requiredOption('--config <file>', 'bulwark.yaml with a deploy section')
    .requiredOption('--out <dir>', 'folder to write the base into')
    .option('--force', 'replace the generated files in a non-empty --out folder')
    .addHelpText(
      'after',
      `
Reads deploy.* and, from the rest of bulwark.yaml, only server.port, server.tls.clientAuth,
metrics.port, limits.backend/redis.url, audit.store, ledger.store, auth.jwt.jwks.url and
telemetry.traces (the OTLP endpoint; see docs/deploy.md).
Apply with: kubectl apply -k DIR`,
    )
    .action(async function (this: Command) {
      const io = ioOf(this);
      const o = this.opts<{ config: string; out: string; force?: boolean }>();
      // A file where the folder should be is the user's mistake, named as such (it read "ERR_IO: cannot
      // read output folder: ENOTDIR", exit 1).
      if ((await stat(o.out).catch(() => null))?.isDirectory() === false)
        throw new BulwarkError('ERR_USAGE', `--out ${o.out} is a file; give a folder`, {
          details: { option: '--out' },
        });
      const d = await lib();
      const { inputs, text } = await d.loadDeployConfig(o.config);
      const out = resolve(o.out);
      const configFiles = await d.readConfigFiles(o.config, inputs.deploy.configFiles, text);
      const written = await d.writeKustomizeBase(out, inputs, text, {
        force: o.force === true,
        configFiles,
        inputs: [o.config],
      });
      // The generated base must pass our own checker; anything it finds is a bug in the generator.
      const docs = await Promise.all(
        written.objects.map(async (x) =>
          d.parseManifests(await readFile(resolve(out, x.file), 'utf8'), x.file),
        ),
      );
      const findings = d.checkManifests(docs.flat());
      if (findings.length > 0) {
        throw new BulwarkError(
          'ERR_DEPLOY_MANIFEST_INVALID',
          `generated base fails its own check: ${findings.map((f) => `${f.rule} at ${f.path}`).join('; ')}`,
        );
      }
      for (const n of written.notes) io.note(`note: ${n}`);
      io.result({ ...written, findings: 0 }, () =>
        [
          `wrote ${written.files.length} files to ${out}:`,
          ...written.objects.map((x) => `  ${x.file.padEnd(42)} ${x.kind} ${x.name}`),
          '  bulwark.yaml                               (ConfigMap via configMapGenerator)',
          '  kustomization.yaml',
          'deploy check: no findings (Pod Security restricted and hardening rules)',
          `apply with: kubectl apply -k ${out}`,
        ].join('\n'),
      );
    });

  deploy
    .command('check')
    .description('check manifests against Pod Security baseline/restricted and hardening rules')
    .argument('<files...>', "YAML files (multi-document; kind: List is expanded); '-' reads stdin")
    .option('--level <level>', 'Pod Security level: baseline or restricted', levelOption, 'restricted')
    .option(
      '--fail-on <severity>',
      `exit non-zero on findings at or above: ${SEVERITY_NAMES.join(', ')}`,
      severityOption,
      'medium',
    )
    .addHelpText(
      'after',
      `
Pod Security Standards as of Kubernetes v1.37 ("latest") only: on an older cluster its admission may
differ on a few controls (docs/deploy.md). A custom resource (Argo Rollout, Knative Service, KServe
InferenceService...) is not checked: an info finding BW-UNCHECKED-KIND says so. One input (file or
stdin) is at most 64 MiB.
Rule ids, severities and fixes: docs/deploy.md. Exit 5 (ERR_DEPLOY_FINDINGS) when findings reach
--fail-on.`,
    )
    .action(async function (this: Command, files: string[]) {
      const io = ioOf(this);
      const o = this.opts<{ level: 'baseline' | 'restricted'; failOn: Severity }>();
      const d = await lib();
      const docs = [];
      for (const f of files) {
        // '-' reads stdin: `kubectl kustomize overlays/prod | bulwark deploy check -`
        const text = f === '-' ? await readStdin() : await readManifestFile(f);
        const parsed = d.parseManifests(text, f);
        // An input with no object is not a clean one: `kubectl kustomize k8s/ | bulwark deploy check -`
        // with kubectl missing or failing pipes nothing, which passed as "no findings", exit 0.
        if (parsed.length === 0)
          throw new BulwarkError(
            'ERR_MANIFEST_PARSE',
            `${f === '-' ? 'stdin' : f}: no Kubernetes object to check (empty input: did the command that renders the manifests fail?)`,
            { details: { file: f } },
          );
        docs.push(...parsed);
      }
      const findings = d.checkManifests(docs, { level: o.level });
      const failing = d.failsAt(findings, o.failOn);
      const counts = Object.fromEntries(
        SEVERITY_NAMES.map((s) => [s, findings.filter((f) => f.severity === s).length]),
      );
      // Objects of a kind the checker does not know are counted apart: "no findings" is not "all fine".
      const unchecked = findings.filter((f) => f.rule === 'BW-UNCHECKED-KIND').length;
      io.result(
        { objects: docs.length, unchecked, level: o.level, failOn: o.failOn, counts, findings },
        () =>
          `${table(findings)}\n\n${docs.length} objects checked (Pod Security ${o.level} + hardening)${
            unchecked > 0
              ? `, ${unchecked} of them of a kind not known and NOT checked (BW-UNCHECKED-KIND)`
              : ''
          }: ${SEVERITY_NAMES.slice()
            .reverse()
            .map((s) => `${counts[s]} ${s}`)
            .join(', ')}`,
      );
      if (failing.length > 0) {
        throw new BulwarkError(
          'ERR_DEPLOY_FINDINGS',
          `${failing.length} finding${failing.length === 1 ? '' : 's'} at or above ${o.failOn}`,
          { details: { findings: failing.length, failOn: o.failOn } },
        );
      }
    });
}
