/**
 * The threat model behind `bulwark plan`: the measures Bulwark ships, the threats to an ML system in a
 * regulated field, how much of each threat's risk each measure removes on its own, and which measures
 * need which. docs/threat-model.md is this table in prose, with sources; test/plan checks the two agree
 * and recomputes the entries derived from committed benchmark results.
 *
 * Risk weight of a threat = likelihood × impact (1–5 each, after NIST SP 800-30 Rev. 1, Tables G-2/H-2,
 * semi-quantitative scale), for the reference workload of the article (card-fraud scoring in a
 * regulated financial institution). A plan file can override likelihood and impact per threat.
 */

export interface Measure {
  id: string;
  name: string;
  /** The Bulwark command or folder that implements it. */
  implementedBy: string;
  /** Measures that must be chosen for this one to work. */
  dependsOn: readonly string[];
  /** Why the dependency exists. */
  dependencyReason?: string;
}

export interface Threat {
  id: string;
  name: string;
  description: string;
  likelihood: number;
  impact: number;
  /** Where the threat is described. */
  sources: readonly string[];
}

export interface Effect {
  threat: string;
  measure: string;
  /** Fraction of the threat's risk the measure removes on its own, in [0, 1]. */
  e: number;
  /** `measured`: derived from a committed bench result (formula in `basis`); `judgement`: argued from the cited source. */
  kind: 'measured' | 'judgement';
  basis: string;
}

export const MEASURES: readonly Measure[] = [
  {
    id: 'field-encryption',
    name: 'Field-level encryption of personal data',
    implementedBy: 'bulwark data protect (src/data, src/keys)',
    dependsOn: [],
  },
  {
    id: 'budget-ledger',
    name: 'Privacy-budget ledger',
    implementedBy: 'src/privacy/ledger (bulwark query budget)',
    dependsOn: [],
  },
  {
    id: 'dp-training',
    name: 'Differentially private training (DP-SGD)',
    implementedBy: 'bulwark train --dp-epsilon (src/privacy)',
    dependsOn: ['budget-ledger'],
    dependencyReason:
      'the epsilon spent must be recorded and capped across runs, or composition is unbounded',
  },
  {
    id: 'adversarial-training',
    name: 'Adversarial (PGD) training',
    implementedBy: 'src/robust (bulwark evaluate)',
    dependsOn: [],
  },
  {
    id: 'model-package',
    name: 'Encrypted, signed model package',
    implementedBy: 'src/model (issue 7)',
    dependsOn: [],
  },
  {
    id: 'gateway',
    name: 'Zero-trust inference gateway (TLS/mTLS, JWT, Cedar policy, limits)',
    implementedBy: 'bulwark serve (src/gateway, issue 9)',
    dependsOn: ['model-package'],
    dependencyReason: 'the gateway serves only verified model packages',
  },
  {
    id: 'input-validation',
    name: 'Input validation against the schema domain',
    implementedBy: 'gateway pipeline stage (src/robust validators)',
    dependsOn: ['gateway'],
    dependencyReason: 'it runs as a stage of the gateway pipeline',
  },
  {
    id: 'detectors',
    name: 'Adversarial and extraction detectors',
    implementedBy: 'gateway pipeline stage (src/robust detectors)',
    dependsOn: ['gateway'],
    dependencyReason: "the gateway's detectors need the gateway",
  },
  {
    id: 'audit-log',
    name: 'Tamper-evident audit log',
    implementedBy: 'bulwark audit (src/audit)',
    dependsOn: [],
  },
  {
    id: 'tee',
    name: 'Attested enclave (TEE) inference',
    implementedBy: 'src/attest (issue 10)',
    dependsOn: ['gateway'],
    dependencyReason: 'HPKE sessions and attestation wrap the gateway',
  },
  {
    id: 'k8s-hardening',
    name: 'Hardened Kubernetes deployment',
    implementedBy: 'bulwark deploy k8s / deploy check (src/deploy)',
    dependsOn: ['gateway'],
    dependencyReason: 'it deploys the gateway',
  },
];

export const THREATS: readonly Threat[] = [
  {
    id: 'data-breach',
    name: 'Theft of training data at rest',
    description: 'a stolen disk, bucket, backup or database dump exposes personal and card data',
    likelihood: 4,
    impact: 5,
    sources: [
      'OWASP ML Top 10 (2023) — cf. ML03 model inversion',
      'ENISA, Securing Machine Learning Algorithms (2021), §4',
    ],
  },
  {
    id: 'membership-inference',
    name: 'Training-data leakage through the model',
    description:
      'membership inference or reconstruction from model outputs (Shokri et al. 2017; Carlini et al. 2022, LiRA)',
    likelihood: 3,
    impact: 4,
    sources: ['OWASP ML04 Membership Inference', 'MITRE ATLAS AML.T0024'],
  },
  {
    id: 'model-theft',
    name: 'Model file stolen',
    description: 'the model is copied from a registry, disk or container image',
    likelihood: 3,
    impact: 4,
    sources: ['OWASP ML05 Model Theft', 'MITRE ATLAS AML.T0048 (exfiltration)'],
  },
  {
    id: 'model-tampering',
    name: 'Model substituted or backdoored',
    description: 'a swapped or poisoned model is served (supply chain)',
    likelihood: 2,
    impact: 5,
    sources: ['OWASP ML06 AI Supply Chain Attacks', 'OWASP ML10 Model Poisoning', 'SLSA v1.0'],
  },
  {
    id: 'evasion',
    name: 'Evasion by adversarial inputs',
    description: 'inputs crafted to flip the decision (e.g. fraud scored as legitimate)',
    likelihood: 4,
    impact: 4,
    sources: ['OWASP ML01 Input Manipulation', 'MITRE ATLAS AML.T0015', 'Madry et al. 2018'],
  },
  {
    id: 'model-extraction',
    name: 'Model extraction through queries',
    description: 'a caller trains a copy of the model from its answers (Tramèr et al. 2016)',
    likelihood: 3,
    impact: 3,
    sources: ['OWASP ML05 Model Theft', 'MITRE ATLAS AML.T0024.002'],
  },
  {
    id: 'unauthorised-inference',
    name: 'Unauthorised use of the model',
    description: 'predictions obtained without authentication or outside the caller’s rights',
    likelihood: 4,
    impact: 4,
    sources: ['OWASP API Security Top 10 (2023) API1, API2', 'NIST SP 800-207 (zero trust)'],
  },
  {
    id: 'repudiation',
    name: 'Undetected tampering with records',
    description:
      'predictions, training runs or budget spends altered or denied after the fact; no evidence for an auditor',
    likelihood: 3,
    impact: 3,
    sources: ['STRIDE (repudiation, tampering)', 'RFC 9162 (transparency logs)'],
  },
  {
    id: 'host-compromise',
    name: 'Host or cloud operator reads memory',
    description: 'a compromised node, hypervisor or insider reads the decrypted model and inputs in memory',
    likelihood: 1,
    impact: 5,
    sources: ['Confidential Computing Consortium, A Technical Analysis of Confidential Computing (2022)'],
  },
  {
    id: 'lateral-movement',
    name: 'Container escape and lateral movement',
    description: 'a compromised pod reaches other workloads, the node or the Kubernetes API',
    likelihood: 3,
    impact: 4,
    sources: [
      'MITRE ATT&CK for Containers (T1611 escape to host)',
      'NSA/CISA Kubernetes Hardening Guide v1.2 (2022)',
    ],
  },
];

export const EFFECTS: readonly Effect[] = [
  {
    threat: 'data-breach',
    measure: 'field-encryption',
    e: 0.8,
    kind: 'judgement',
    basis:
      'personal fields are AEAD ciphertext under keys held elsewhere; non-personal columns and key compromise remain (GDPR Art. 34(3)(a) treats encrypted data as unintelligible)',
  },
  {
    threat: 'membership-inference',
    measure: 'dp-training',
    e: 0.91,
    kind: 'measured',
    basis:
      'robust.json: LiRA AUC advantage over 0.5 at DP-SGD epsilon 4 vs the non-private model, 1 − (0.5208 − 0.5)/(0.7320 − 0.5)',
  },
  {
    threat: 'membership-inference',
    measure: 'budget-ledger',
    e: 0.1,
    kind: 'judgement',
    basis:
      'caps the epsilon of repeated releases and queries (composition), without which a per-run guarantee says little',
  },
  {
    threat: 'model-theft',
    measure: 'model-package',
    e: 0.7,
    kind: 'judgement',
    basis: 'the file at rest and in the registry is ciphertext; it is still decrypted in the server’s memory',
  },
  {
    threat: 'model-theft',
    measure: 'tee',
    e: 0.3,
    kind: 'judgement',
    basis: 'the decrypted model exists only inside the enclave',
  },
  {
    threat: 'model-theft',
    measure: 'k8s-hardening',
    e: 0.1,
    kind: 'judgement',
    basis: 'read-only, non-root pods with no API token make copying out harder',
  },
  {
    threat: 'model-tampering',
    measure: 'model-package',
    e: 0.9,
    kind: 'judgement',
    basis: 'a DSSE/Sigstore signature over the manifest is verified before any byte is loaded',
  },
  {
    threat: 'model-tampering',
    measure: 'audit-log',
    e: 0.2,
    kind: 'judgement',
    basis: 'lineage records which package served each prediction, so a swap is detected afterwards',
  },
  {
    threat: 'evasion',
    measure: 'adversarial-training',
    e: 0.65,
    kind: 'measured',
    basis: 'robust.json: PGD eps 0.1 success rate on MNIST, normal vs PGD-trained model, 1 − 33.2 % / 94.6 %',
  },
  {
    threat: 'evasion',
    measure: 'detectors',
    e: 0.3,
    kind: 'measured',
    basis:
      'robust.json: Mahalanobis input detector, share caught of PGD, Square and adaptive PGD, mean (17.4 % + 71.5 % + 0 %) / 3',
  },
  {
    threat: 'evasion',
    measure: 'input-validation',
    e: 0.1,
    kind: 'judgement',
    basis:
      'domain checks stop out-of-range and malformed inputs only; in-domain perturbations pass (the article’s “80–90 %” is not supported by our runs)',
  },
  {
    threat: 'model-extraction',
    measure: 'gateway',
    e: 0.3,
    kind: 'judgement',
    basis: 'authentication, per-caller rate limits and query budgets bound and attribute the queries',
  },
  {
    threat: 'model-extraction',
    measure: 'detectors',
    e: 0.3,
    kind: 'judgement',
    basis:
      'stateful query and PRADA-style detectors (Juuti et al. 2019); an adaptive attacker spreads queries',
  },
  {
    threat: 'unauthorised-inference',
    measure: 'gateway',
    e: 0.9,
    kind: 'judgement',
    basis: 'TLS/mTLS, JWT validation and a deny-by-default Cedar policy on every request (NIST SP 800-207)',
  },
  {
    threat: 'unauthorised-inference',
    measure: 'k8s-hardening',
    e: 0.2,
    kind: 'judgement',
    basis: 'NetworkPolicies admit only the named callers to the gateway port',
  },
  {
    threat: 'unauthorised-inference',
    measure: 'audit-log',
    e: 0.1,
    kind: 'judgement',
    basis: 'every decision is logged, so misuse is found and attributed',
  },
  {
    threat: 'repudiation',
    measure: 'audit-log',
    e: 0.9,
    kind: 'judgement',
    basis: 'append-only Merkle log with signed checkpoints; inclusion and consistency proofs (RFC 9162)',
  },
  {
    threat: 'host-compromise',
    measure: 'tee',
    e: 0.8,
    kind: 'judgement',
    basis: 'memory encrypted and attested before keys are released; side channels remain',
  },
  {
    threat: 'host-compromise',
    measure: 'field-encryption',
    e: 0.1,
    kind: 'judgement',
    basis: 'data at rest on the host stays ciphertext',
  },
  {
    threat: 'lateral-movement',
    measure: 'k8s-hardening',
    e: 0.7,
    kind: 'judgement',
    basis:
      'Pod Security restricted, default-deny NetworkPolicies, no service-account token (NSA/CISA Kubernetes Hardening Guide)',
  },
];

export const MEASURE_IDS = MEASURES.map((m) => m.id);
export const THREAT_IDS = THREATS.map((t) => t.id);
