import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runBulwark } from '../helpers/cli.js';

describe('bulwark demo --quick', () => {
  it('runs every stage and writes report.json and report.html with no personal values in the report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-'));
    const out = join(dir, 'out');
    const r = runBulwark(['--json', 'demo', '--quick', '--out', out, '--seed', '3']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      report: string;
      summary: Record<string, Record<string, unknown>>;
    };
    assert.equal(result.report, join(out, 'report.html'));
    const files = readdirSync(out);
    for (const f of ['report.html', 'report.json', 'schema.yaml']) assert.ok(files.includes(f), f);
    assert.ok(!files.some((f) => f.endsWith('.tmp')), 'no temporary files left');

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      sections: Array<{ id: string; status: string }>;
      summary: Record<string, Record<string, unknown>>;
    };
    assert.ok(report.sections.length >= 2);
    for (const s of report.sections) assert.equal(s.status === 'failed', false, `stage ${s.id} failed`);
    assert.equal(report.summary['data']?.['rows'], 20_000);
    // The baseline fraud model learns the synthetic fraud patterns (well above chance) and is written as ONNX.
    assert.ok(files.includes('baseline.onnx'));
    assert.ok(Number(report.summary['baseline']?.['rocAuc']) > 0.8, 'baseline ROC AUC');
    const personal = String(report.summary['schema']?.['personal']).split(',');
    for (const f of ['card_number', 'national_id', 'email', 'phone', 'date_of_birth']) {
      assert.ok(personal.includes(f), `${f} detected as personal`);
    }

    // The report must not leak the data it describes: no card number or SSN from the generated file.
    const csv = readFileSync(join(out, 'transactions.csv'), 'utf8').split('\n');
    const header = (csv[0] as string).split(',');
    const firstRow = (csv[1] as string).split(',');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    const json = readFileSync(join(out, 'report.json'), 'utf8');
    for (const col of ['card_number', 'national_id', 'email']) {
      const v = firstRow[header.indexOf(col)] as string;
      assert.ok(v.length > 5);
      assert.ok(!html.includes(v) && !json.includes(v), `${col} value leaked into the report`);
    }
  });

  it('is deterministic for a seed (same data file)', () => {
    const a = mkdtempSync(join(tmpdir(), 'bulwark-demo-a-'));
    const b = mkdtempSync(join(tmpdir(), 'bulwark-demo-b-'));
    assert.equal(runBulwark(['demo', '--quick', '--out', a, '--seed', '5']).code, 0);
    assert.equal(runBulwark(['demo', '--quick', '--out', b, '--seed', '5']).code, 0);
    assert.equal(
      readFileSync(join(a, 'transactions.csv'), 'utf8'),
      readFileSync(join(b, 'transactions.csv'), 'utf8'),
    );
  });
});
