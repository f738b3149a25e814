import { readFile } from 'node:fs/promises';
import { BulwarkError, fsError, warnIfWorldReadable } from '../core/index.js';

/**
 * Where a secret (a keyring passphrase, a PKCS#11 PIN) comes from: a file (a mounted Kubernetes
 * secret), an environment variable, a prompt on the terminal, or bytes handed over by a program.
 * Never the command line: argv is visible to every user of the machine through `ps` and lands in shell
 * history. Secrets never appear in messages or logs.
 */
export interface SecretSource {
  /** Read the secret from this file (one trailing newline is dropped). */
  file?: string;
  /** Read the secret from this environment variable. */
  env?: string;
  /** The secret itself, for programs (the caller keeps it out of logs). */
  value?: string | Uint8Array;
  /** Prompt on the terminal when no other source is given and stdin is a TTY (default true). */
  prompt?: boolean;
}

/** Reads a secret from its source; `what` names it in messages ("keyring passphrase"). */
export async function readSecret(what: string, src: SecretSource): Promise<Buffer> {
  let s: Buffer | undefined;
  if (src.value !== undefined) {
    s = typeof src.value === 'string' ? Buffer.from(src.value, 'utf8') : Buffer.from(src.value);
  } else if (src.file !== undefined) {
    warnIfWorldReadable(src.file, what);
    try {
      s = await readFile(src.file);
    } catch (e) {
      throw fsError(e, src.file, `cannot read the ${what}`);
    }
    if (s.length > 0 && s[s.length - 1] === 0x0a)
      s = s.subarray(0, s.length - (s[s.length - 2] === 0x0d ? 2 : 1));
  } else if (src.env !== undefined) {
    const v = process.env[src.env];
    if (v === undefined || v === '') {
      throw new BulwarkError('ERR_SECRET_MISSING', `the ${what} variable ${src.env} is not set`, {
        details: { env: src.env },
      });
    }
    s = Buffer.from(v, 'utf8');
  } else if (src.prompt !== false && process.stdin.isTTY === true && process.stderr.isTTY === true) {
    s = await promptHidden(`${what[0]!.toUpperCase()}${what.slice(1)}: `);
  }
  if (s === undefined) {
    throw new BulwarkError(
      'ERR_SECRET_MISSING',
      `a ${what} is needed: give it in a file or an environment variable (or run on a terminal to be asked)`,
    );
  }
  if (s.length === 0) throw new BulwarkError('ERR_SECRET_MISSING', `the ${what} is empty`);
  return s;
}

/** Reads one line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<Buffer> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  const chunks: number[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        for (const c of d) {
          if (c === 0x0d || c === 0x0a || c === 0x04) {
            stdin.off('data', onData);
            resolve();
            return;
          }
          if (c === 0x03) {
            stdin.off('data', onData);
            reject(new BulwarkError('ERR_ABORTED', 'cancelled at the secret prompt'));
            return;
          }
          if (c === 0x7f || c === 0x08) chunks.pop();
          else chunks.push(c);
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
  const out = Buffer.from(chunks);
  chunks.fill(0);
  return out;
}
