import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BulwarkError, fsError, writeFileAtomic } from '../core/index.js';
import type { DeployInputs } from './config.js';
import { buildManifests, CONFIG_MAP, type GeneratedObject } from './manifests.js';

/**
 * Writes a Kustomize base: `kustomization.yaml`, one file per object, and a copy of `bulwark.yaml`
 * that kustomize turns into a ConfigMap (name suffixed with its content hash, so a config change rolls
 * the pods). Every file is written atomically (temp file, fsync, rename).
 */

export interface WrittenBase {
  dir: string;
  files: string[];
  objects: Array<{ kind: string; name: string; file: string }>;
  notes: string[];
}

export function kustomization(
  objects: readonly GeneratedObject[],
  namespace: string,
): Record<string, unknown> {
  return {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: objects.map((o) => o.file),
    configMapGenerator: [{ name: CONFIG_MAP, namespace, files: ['bulwark.yaml'] }],
  };
}

/** Serialises an object as one YAML document (plain, no anchors). */
export function toYaml(o: unknown): string {
  return stringify(o, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * Generates the base into `dir`. Refuses (ERR_FILE_EXISTS) when `dir` already holds files, unless
 * `force` — then the generated files are replaced, and other files are left alone.
 */
export async function writeKustomizeBase(
  dir: string,
  inputs: DeployInputs,
  configText: string,
  opts: { force?: boolean } = {},
): Promise<WrittenBase> {
  const { objects, notes } = buildManifests(inputs);
  let existing: string[] = [];
  try {
    existing = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, dir, 'cannot read output folder');
  }
  if (existing.length > 0 && opts.force !== true) {
    throw new BulwarkError('ERR_FILE_EXISTS', `output folder is not empty: ${dir} (use --force to replace)`, {
      details: { path: dir },
    });
  }
  const files: string[] = [];
  for (const o of objects) {
    await writeFileAtomic(join(dir, o.file), toYaml(o.object));
    files.push(o.file);
  }
  await writeFileAtomic(join(dir, 'bulwark.yaml'), configText);
  files.push('bulwark.yaml');
  await writeFileAtomic(
    join(dir, 'kustomization.yaml'),
    toYaml(kustomization(objects, inputs.deploy.namespace)),
  );
  files.push('kustomization.yaml');
  return {
    dir,
    files,
    objects: objects.map((o) => ({ kind: o.object.kind, name: o.object.metadata.name, file: o.file })),
    notes,
  };
}
