/** Messages between the parent and the software enclave worker (IPC, structured-clone serialization). */
export type WorkerRequest =
  | { kind: 'attestation'; id: number; nonce: Uint8Array }
  | { kind: 'handle'; id: number; frame: Uint8Array }
  /** Open a frame and hand its plaintext to the parent (the gateway runs its pipeline on it). */
  | { kind: 'open'; id: number; frame: Uint8Array }
  /** Seal the answer to an opened request (`handle` from the `opened` reply). */
  | { kind: 'seal'; id: number; handle: number; plaintext: Uint8Array };

export interface WorkerInit {
  kind: 'init';
  moduleId: string;
  model: Uint8Array | null;
  threads: number;
  /** Further self-reported measurements declared by the parent (hex), e.g. the gateway's model digests. */
  measurements?: Record<string, string>;
  /** Attestation and session lifetimes and the session cap (AttestedSessionServerOptions). */
  session?: { attestationTtlSeconds?: number; sessionTtlSeconds?: number; maxSessions?: number };
  /** How long an opened request waits for its answer before the worker forgets it (ms). */
  pendingTtlMs?: number;
}

export type WorkerReply =
  | { kind: 'ready'; signerPublicKey: string; publicKey: Uint8Array; measurements: Record<string, string> }
  | { kind: 'fatal'; code: string; message: string }
  | { kind: 'result'; id: number; ok: true; bytes: Uint8Array }
  | { kind: 'opened'; id: number; handle: number; plaintext: Uint8Array; sessionId: string; seq: bigint }
  | { kind: 'result'; id: number; ok: false; code: string; message: string };
