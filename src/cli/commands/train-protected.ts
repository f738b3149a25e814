/**
 * `bulwark train` on a protected dataset: a training file (`--data`) or evaluation set (`--eval`) with a
 * Bulwark protection manifest beside it is verified against that manifest before any training, fail
 * closed, by the check every data-reading command runs (protected-data.ts, docs/protect.md). What is
 * particular to training: the model's metadata (`bulwark.protected_data`), the `model.trained` audit
 * event (`protectedDataset`, `protectedVerified`; `evalProtected…` for `--eval`) and the `--json`
 * result (`protectedData`) record the dataset id and whether it was verified.
 */
import { META_PROTECTED_DATA } from '../../train/index.js';
import type { ProtectedDataRecord, ProtectedDataUse } from './protected-data.js';

/** How train words the check (its keyring options come with the integrity options). */
export const TRAIN_PROTECTED_USE: ProtectedDataUse = {
  files: '--data/--eval',
  purpose: 'any training',
  recorded: 'the model, the audit event and the --json result',
};

/** The ONNX metadata entry of a protected training file (none for an ordinary file). */
export function protectedMetadata(p: ProtectedDataRecord | undefined): Record<string, string> {
  return p === undefined ? {} : { [META_PROTECTED_DATA]: JSON.stringify(p) };
}
