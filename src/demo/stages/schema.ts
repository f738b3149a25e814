import { join } from 'node:path';
import { inferSchemaFromDataset, isPersonal, readDataset, saveSchema } from '../../data/index.js';
import { type Bar, type Block, binGroups } from '../../report/index.js';
import type { DemoStage } from '../stage.js';

const SENSITIVITY_COLORS: Record<string, string> = {
  public: '#16a34a',
  internal: '#2563eb',
  personal: '#d97706',
  sensitive: '#dc2626',
};

/** Stage 2: infer the schema and show which fields are personal: what must be protected. */
export const schemaStage: DemoStage = {
  id: 'schema',
  title: 'Schema and personal data',
  async run(ctx) {
    const path = ctx.state.dataPath;
    if (!path) throw new Error('the schema stage needs the data stage');
    const ds = await readDataset(path);
    ctx.progress(0.5);
    const schema = {
      ...inferSchemaFromDataset(ds),
      name: 'card-transactions',
      label: ctx.state.label ?? 'is_fraud',
    };
    await saveSchema(join(ctx.options.outDir, 'schema.yaml'), schema);
    ctx.state.dataset = ds;
    ctx.state.schema = schema;
    const personal = schema.fields.filter(isPersonal);
    const counts = new Map<string, number>();
    for (const f of schema.fields) counts.set(f.sensitivity, (counts.get(f.sensitivity) ?? 0) + 1);
    const bars: Bar[] = Object.entries(SENSITIVITY_COLORS).map(([k, color]) => ({
      label: k,
      value: counts.get(k) ?? 0,
      color,
    }));
    const blocks: Block[] = [
      {
        kind: 'text',
        text:
          'Bulwark inferred the type, bounds and sensitivity of every field from names and values. ' +
          `${personal.length} of ${schema.fields.length} fields hold personal data; every field is kept ` +
          '(nothing is dropped), and the schema is saved as schema.yaml for review.',
      },
      { kind: 'bars', title: 'Fields by sensitivity class', bars },
      {
        kind: 'table',
        caption: 'Inferred schema',
        columns: ['field', 'type', 'sensitivity', 'PII kind', 'nullable'],
        rows: schema.fields.map((f) => [
          f.name,
          f.type,
          f.sensitivity,
          f.pii ?? '',
          f.nullable ? 'yes' : 'no',
        ]),
      },
    ];
    const label = ctx.state.label;
    if (ds.has('amount') && label && ds.has(label)) {
      const amount = ds.numbers('amount');
      const y = ds.numbers(label);
      const fraud: number[] = [];
      const legit: number[] = [];
      for (let i = 0; i < amount.length; i++) (y[i] === 1 ? fraud : legit).push(amount[i] as number);
      const binned = binGroups(
        [
          { name: 'legitimate', values: legit },
          { name: 'fraud', values: fraud },
        ],
        { log10: true },
      );
      blocks.push({
        kind: 'histogram',
        title: 'Transaction amount by label',
        xLabel: 'amount',
        log10: true,
        ...binned,
      });
    }
    return {
      summary: {
        fields: schema.fields.length,
        personalFields: personal.length,
        personal: personal.map((f) => f.name).join(','),
      },
      blocks,
    };
  },
};
