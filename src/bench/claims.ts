/**
 * Every performance and effectiveness figure stated by the source article ("Securing Cloud-Native AI",
 * /work/shared/seed/), in its four sections: the "Secure AI Performance Benchmarks" table, "Performance
 * Impact Analysis", "Real-World Performance Metrics" and "Defense Effectiveness Metrics". The cost
 * table (`bulwark bench costs`) gives each one at least one row; a test checks that no claim is left
 * without one.
 */

export const SECTIONS = [
  'Secure AI Performance Benchmarks',
  'Performance Impact Analysis',
  'Real-World Performance Metrics',
  'Defense Effectiveness Metrics',
] as const;
export type Section = (typeof SECTIONS)[number];

export interface Claim {
  id: string;
  section: Section;
  /** The claim as the article words it. */
  text: string;
  /** The stated range (a single figure has low = high); absent for a qualitative rating. */
  low?: number;
  high?: number;
  unit: string;
}

const table = (
  id: string,
  measure: string,
  column: string,
  text: string,
  range?: [number, number],
  unit = '%',
): Claim => ({
  id: `table.${id}.${column}`,
  section: 'Secure AI Performance Benchmarks',
  text: `${measure}: ${column === 'impact' ? 'performance impact' : column === 'cost' ? 'cost increase' : 'security benefit'} ${text}`,
  ...(range ? { low: range[0], high: range[1] } : {}),
  unit: range ? unit : 'rating',
});

export const CLAIMS: readonly Claim[] = [
  table('data-encryption', 'Data Encryption', 'impact', '5-15%', [5, 15]),
  table('data-encryption', 'Data Encryption', 'cost', '10-20%', [10, 20]),
  table('data-encryption', 'Data Encryption', 'benefit', 'High'),
  table('differential-privacy', 'Differential Privacy', 'impact', '10-25% accuracy', [10, 25]),
  table('differential-privacy', 'Differential Privacy', 'cost', '15-30%', [15, 30]),
  table('differential-privacy', 'Differential Privacy', 'benefit', 'Very High'),
  table('model-encryption', 'Model Encryption', 'impact', '2-5%', [2, 5]),
  table('model-encryption', 'Model Encryption', 'cost', '5-15%', [5, 15]),
  table('model-encryption', 'Model Encryption', 'benefit', 'Medium'),
  table('tee', 'TEE Deployment', 'impact', '200-300%', [200, 300]),
  table('tee', 'TEE Deployment', 'cost', '50-100%', [50, 100]),
  table('tee', 'TEE Deployment', 'benefit', 'Very High'),
  table('adversarial-training', 'Adversarial Training', 'impact', '20-40% training time', [20, 40]),
  table('adversarial-training', 'Adversarial Training', 'cost', '25-40%', [25, 40]),
  table('adversarial-training', 'Adversarial Training', 'benefit', 'High'),
  table('input-validation', 'Input Validation', 'impact', '1-5ms per request', [1, 5], 'ms'),
  table('input-validation', 'Input Validation', 'cost', '5-10%', [5, 10]),
  table('input-validation', 'Input Validation', 'benefit', 'Medium'),
  {
    id: 'impact.encryption-training-time',
    section: 'Performance Impact Analysis',
    text: 'Encryption overhead: 5-15% increased training time',
    low: 5,
    high: 15,
    unit: '%',
  },
  {
    id: 'impact.dp-accuracy-eps1',
    section: 'Performance Impact Analysis',
    text: 'Differential privacy: 10-25% accuracy reduction for ε=1.0',
    low: 10,
    high: 25,
    unit: '%',
  },
  {
    id: 'impact.encrypted-memory-storage',
    section: 'Performance Impact Analysis',
    text: 'Memory usage: 20-30% increase for encrypted data storage',
    low: 20,
    high: 30,
    unit: '%',
  },
  {
    id: 'realworld.tee-inference',
    section: 'Real-World Performance Metrics',
    text: 'TEE inference: 2-3x slower than native execution',
    low: 2,
    high: 3,
    unit: 'x',
  },
  {
    id: 'realworld.encrypted-model-size',
    section: 'Real-World Performance Metrics',
    text: 'Encrypted model storage: 40-60% size increase',
    low: 40,
    high: 60,
    unit: '%',
  },
  {
    id: 'realworld.session-setup',
    section: 'Real-World Performance Metrics',
    text: 'Secure session establishment: 100-200ms overhead',
    low: 100,
    high: 200,
    unit: 'ms',
  },
  {
    id: 'defense.attack-success-without-at',
    section: 'Defense Effectiveness Metrics',
    text: 'Adversarial training: reduces attack success rate from 95% …',
    low: 95,
    high: 95,
    unit: '%',
  },
  {
    id: 'defense.attack-success-with-at',
    section: 'Defense Effectiveness Metrics',
    text: 'Adversarial training: … to 15-25%',
    low: 15,
    high: 25,
    unit: '%',
  },
  {
    id: 'defense.input-validation-caught',
    section: 'Defense Effectiveness Metrics',
    text: 'Input validation: catches 80-90% of basic adversarial attacks',
    low: 80,
    high: 90,
    unit: '%',
  },
  {
    id: 'defense.ensemble-improvement',
    section: 'Defense Effectiveness Metrics',
    text: 'Ensemble defenses: provide 3-5x improvement over single methods',
    low: 3,
    high: 5,
    unit: 'x',
  },
];
