import { constants, type FileHandle, lstat, open, readdir, realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { BulwarkError, fsError, writeFileAtomic } from '../core/index.js';
import { checkManifests } from './check.js';
import type { DeployInputs } from './config.js';
import { buildManifests, CONFIG_MAP, type GeneratedObject } from './manifests.js';

/** The manifests folder is this command's own output: it is created when missing, with its parents. */
const OWN_FOLDER = { createFolders: true } as const;

/**
 * Writes a Kustomize base: `kustomization.yaml`, one file per object, and a copy of `bulwark.yaml` (and
 * of the non-secret files it names in `deploy.configFiles`) that kustomize turns into a ConfigMap (name
 * suffixed with its content hash, so a config change rolls the pods). Every file is written atomically
 * (temp file, fsync, rename).
 */

export interface WrittenBase {
  dir: string;
  files: string[];
  objects: Array<{ kind: string; name: string; file: string }>;
  notes: string[];
}

export interface ConfigFile {
  name: string;
  bytes: Uint8Array;
}

export function kustomization(
  objects: readonly GeneratedObject[],
  namespace: string,
  configFiles: readonly string[] = [],
): Record<string, unknown> {
  return {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: objects.map((o) => o.file),
    configMapGenerator: [{ name: CONFIG_MAP, namespace, files: ['bulwark.yaml', ...configFiles] }],
  };
}

/** Serialises an object as one YAML document (plain, no anchors). */
export function toYaml(o: unknown): string {
  return stringify(o, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/** Below etcd's 1.5 MiB object limit with room for metadata: a larger ConfigMap is refused by the API server. */
const CONFIG_MAP_MAX_BYTES = 1_000_000;
/** PEM private keys and Bulwark's note-signing key format (`PRIVATE+KEY+…`). */
const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PRIVATE\+KEY\+/;

/**
 * Opens a `deploy.configFiles` entry: a regular file in the folder itself. A symbolic link is refused
 * (ERR_CONFIG_INVALID naming deploy.configFiles), whether it points inside the folder or out: it could
 * copy any file the user can read (~/.ssh/id_ed25519, /etc/…) into the ConfigMap. lstat gives the
 * message; O_NOFOLLOW closes the race of a file replaced by a link between the two calls. A FIFO or
 * device (O_NONBLOCK: opening a FIFO does not wait for a writer) is refused as not a regular file. A
 * hard link (a regular file with more than one name: `ln ~/.aws/credentials trust.yaml`, as far as the
 * kernel's protected_hardlinks lets a user make one) reads as the file it shares its inode with, so a
 * link count above 1 is refused too, from the opened file's own stat.
 */
async function openConfigFile(path: string, name: string): Promise<FileHandle> {
  const why = {
    'a symbolic link':
      ', refused wherever it points (it could copy a file from outside the folder of bulwark.yaml into the ConfigMap); copy the file itself into the folder',
    'a hard link':
      ' (its file has more than one name, so its content may be a file from elsewhere); copy the file itself into the folder',
    'not a regular file': ' (a folder, FIFO or device); name a file in the folder of bulwark.yaml',
  } as const;
  const refuse = (what: keyof typeof why) =>
    new BulwarkError('ERR_CONFIG_INVALID', `deploy.configFiles: ${name} is ${what}${why[what]}`, {
      details: { firstPath: 'deploy.configFiles', file: name },
    });
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (e) {
    throw fsError(e, path, 'deploy.configFiles: cannot read');
  }
  if (st.isSymbolicLink()) throw refuse('a symbolic link');
  if (!st.isFile()) throw refuse('not a regular file');
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') throw refuse('a symbolic link');
    throw fsError(e, path, 'deploy.configFiles: cannot read');
  }
  const opened = await fh.stat();
  if (!opened.isFile() || opened.nlink > 1) {
    await fh.close();
    throw refuse(opened.isFile() ? 'a hard link' : 'not a regular file');
  }
  return fh;
}

/**
 * Reads `deploy.configFiles` from the folder of bulwark.yaml; symbolic links and other non-regular
 * files, private keys and oversize sets are refused.
 */
export async function readConfigFiles(
  configPath: string,
  names: readonly string[],
  configText: string,
): Promise<ConfigFile[]> {
  const out: ConfigFile[] = [];
  let total = Buffer.byteLength(configText);
  for (const name of names) {
    const path = join(dirname(configPath), name);
    const fh = await openConfigFile(path, name);
    let bytes: Uint8Array;
    try {
      bytes = await fh.readFile();
    } catch (e) {
      throw fsError(e, path, 'deploy.configFiles: cannot read');
    } finally {
      await fh.close();
    }
    if (PRIVATE_KEY.test(Buffer.from(bytes).toString('latin1'))) {
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `deploy.configFiles: ${name} holds a private key; it belongs in a Secret (deploy.secrets), not in a ConfigMap`,
        { details: { firstPath: 'deploy.configFiles' } },
      );
    }
    total += bytes.length;
    out.push({ name, bytes });
  }
  if (total > CONFIG_MAP_MAX_BYTES) {
    throw new BulwarkError(
      'ERR_CONFIG_INVALID',
      `deploy.configFiles: bulwark.yaml and its files total ${total} bytes, above the ${CONFIG_MAP_MAX_BYTES} a ConfigMap can hold; put large files (models, detector state) on the models volume`,
      { details: { firstPath: 'deploy.configFiles' } },
    );
  }
  return out;
}

/** The file a path names, links resolved, or the resolved path when nothing is there yet. */
async function identityOf(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/**
 * Generates the base into `dir`. Refuses (ERR_FILE_EXISTS) when `dir` already holds files, unless
 * `force` — then the generated files are replaced, and other files are left alone. `inputs` are the
 * files the command read (bulwark.yaml): a generated object or kustomization.yaml that would replace
 * one of them is ERR_USAGE, whatever `force` says (copying bulwark.yaml onto itself is allowed). The
 * objects are checked with `deploy check` before anything is written: a finding is a generator bug,
 * ERR_DEPLOY_MANIFEST_INVALID, and leaves `dir` untouched.
 */
export async function writeKustomizeBase(
  dir: string,
  inputs: DeployInputs,
  configText: string,
  opts: { force?: boolean; configFiles?: readonly ConfigFile[]; inputs?: readonly string[] } = {},
): Promise<WrittenBase> {
  const { objects, notes } = buildManifests(inputs);
  const findings = checkManifests(
    objects.map((o, i) => ({ file: o.file, document: i, object: o.object as Record<string, unknown> })),
  );
  if (findings.length > 0) {
    throw new BulwarkError(
      'ERR_DEPLOY_MANIFEST_INVALID',
      `generated base fails its own check: ${findings.map((f) => `${f.rule} at ${f.path}`).join('; ')}`,
      { details: { findings: findings.length } },
    );
  }
  const read = new Set(await Promise.all((opts.inputs ?? []).map(identityOf)));
  for (const name of [...objects.map((o) => o.file), 'kustomization.yaml']) {
    if (read.has(await identityOf(join(dir, name))))
      throw new BulwarkError(
        'ERR_USAGE',
        `--out ${dir}: the generated ${name} would replace an input of this command; choose another folder or rename the input`,
        { details: { option: '--out', path: join(dir, name) } },
      );
  }
  const extra = opts.configFiles ?? [];
  const generated = new Set([...objects.map((o) => o.file), 'bulwark.yaml', 'kustomization.yaml']);
  for (const f of extra) {
    if (generated.has(f.name)) {
      throw new BulwarkError(
        'ERR_CONFIG_INVALID',
        `deploy.configFiles: ${f.name} clashes with a generated file`,
        {
          details: { firstPath: 'deploy.configFiles' },
        },
      );
    }
  }
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
    await writeFileAtomic(join(dir, o.file), toYaml(o.object), OWN_FOLDER);
    files.push(o.file);
  }
  await writeFileAtomic(join(dir, 'bulwark.yaml'), configText, OWN_FOLDER);
  files.push('bulwark.yaml');
  for (const f of extra) {
    await writeFileAtomic(join(dir, f.name), f.bytes, OWN_FOLDER);
    files.push(f.name);
  }
  await writeFileAtomic(
    join(dir, 'kustomization.yaml'),
    toYaml(
      kustomization(
        objects,
        inputs.deploy.namespace,
        extra.map((f) => f.name),
      ),
    ),
    OWN_FOLDER,
  );
  files.push('kustomization.yaml');
  return {
    dir,
    files,
    objects: objects.map((o) => ({ kind: o.object.kind, name: o.object.metadata.name, file: o.file })),
    notes,
  };
}
