/** Messages between the parent and the software enclave worker (IPC, structured-clone serialization). */
export type WorkerRequest =
  | { kind: 'attestation'; id: number; nonce: Uint8Array }
  | { kind: 'handle'; id: number; frame: Uint8Array };

export interface WorkerInit {
  kind: 'init';
  moduleId: string;
  model: Uint8Array | null;
  threads: number;
}

export type WorkerReply =
  | { kind: 'ready'; signerPublicKey: string; publicKey: Uint8Array; measurements: Record<string, string> }
  | { kind: 'fatal'; code: string; message: string }
  | { kind: 'result'; id: number; ok: true; bytes: Uint8Array }
  | { kind: 'result'; id: number; ok: false; code: string; message: string };
