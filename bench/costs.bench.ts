/**
 * `npm run bench -- costs`: the measured cost table of `bulwark bench costs` (src/bench), run through the
 * harness so `npm run bench` covers it. The same code measures, reads the committed results and builds
 * the rows; this entry also regenerates docs/performance.md from them. The CLI writes the same file.
 */
import { join } from 'node:path';
import { assemble, COSTS_DESCRIPTION, measureCosts } from '../src/bench/index.js';
import { writeFileAtomic } from '../src/core/index.js';
import { readBenchResults } from '../src/plan/index.js';
import { type Benchmark, REPO_ROOT } from './harness.js';

const bench: Benchmark = {
  name: 'costs',
  description: COSTS_DESCRIPTION,
  async run(ctx) {
    const startedAt = new Date().toISOString();
    const committed = await readBenchResults(join(REPO_ROOT, 'bench', 'results'));
    let last = '';
    const measured = await measureCosts({
      quick: ctx.quick,
      repeats: ctx.repeats,
      onProgress: (stage) => {
        if (stage !== last) ctx.log(stage);
        last = stage;
      },
    });
    const r = assemble(committed, measured, {
      startedAt,
      finishedAt: new Date().toISOString(),
      quick: ctx.quick,
      repeats: ctx.repeats,
    });
    await writeFileAtomic(join(REPO_ROOT, 'docs', 'performance.md'), r.markdown);
    return { figures: measured.figures, facts: r.json.facts, notes: r.json.notes };
  },
};

export default bench;
