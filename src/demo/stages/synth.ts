import { join } from 'node:path';
import { writeTransactionsCsv } from '../../data/index.js';
import type { DemoStage } from '../stage.js';

/** Stage 1: the card transactions the story runs on (generated: no real fraud data ships with Bulwark). */
export const synthStage: DemoStage = {
  id: 'data',
  title: 'Card transactions',
  async run(ctx) {
    const rows = ctx.options.quick ? 20_000 : 100_000;
    const fraudRate = 0.02;
    const path = join(ctx.options.outDir, 'transactions.csv');
    const s = await writeTransactionsCsv(path, { rows, fraudRate, seed: ctx.options.seed }, (done, total) =>
      ctx.progress(done / total),
    );
    ctx.state.dataPath = path;
    ctx.state.label = 'is_fraud';
    return {
      summary: { rows: s.rows, fraudRows: s.fraudRows, fraudRate: s.fraudRate, columns: s.columns },
      blocks: [
        {
          kind: 'text',
          text:
            'Synthetic card transactions with personal fields (cardholder name, Luhn-valid card number, ' +
            'SSN-format national id, email, phone, address, date of birth) and fraud following documented ' +
            'patterns: card-testing bursts, account takeover, high amounts at unusual hours, geographic ' +
            'impossibility. Deterministic for the seed.',
        },
        {
          kind: 'facts',
          facts: [
            ['rows', s.rows],
            ['columns', s.columns],
            ['fraud rows', s.fraudRows],
            ['fraud rate', `${(100 * s.fraudRate).toFixed(2)} %`],
            ['seed', s.seed],
            ['file', 'transactions.csv'],
            ['bytes', s.bytes],
          ],
        },
      ],
    };
  },
};
