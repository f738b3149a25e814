import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONNECTION_ERRNO, isConnectionFailure, redactUrl } from '../../src/core/index.js';

describe('PostgreSQL failure classification and URL redaction (audit log and budget ledger)', () => {
  it('redactUrl drops the password and keeps where it points', () => {
    const r = redactUrl('postgres://alice:s3cr3t-pw@db.internal:5432/bulwark?sslmode=require');
    assert.doesNotMatch(r, /s3cr3t-pw/);
    assert.match(r, /alice@db\.internal:5432\/bulwark/);
    assert.equal(redactUrl('not a url with s3cr3t'), 'postgres (unparseable URL)');
    // libpq's password and sslpassword query parameters too.
    const q = redactUrl('postgres://bob@db:5432/x?password=S3cretPW&sslpassword=K3y&application_name=a');
    assert.doesNotMatch(q, /S3cretPW|K3y/);
    assert.match(q, /application_name=a/);
  });

  it('connection-level failures are recognised; query errors are not', () => {
    for (const code of CONNECTION_ERRNO) assert.ok(isConnectionFailure({ code }), code);
    for (const code of ['08006', '28P01', '3D000', '53300', '57P01', '57P03'])
      assert.ok(isConnectionFailure({ code }), code);
    assert.ok(isConnectionFailure(new Error('Connection terminated unexpectedly')));
    assert.ok(isConnectionFailure(new Error('timeout exceeded when trying to connect')));
    // unique violation, syntax error, serialization failure: the database answered.
    for (const code of ['23505', '42601', '40001', '57014'])
      assert.equal(isConnectionFailure({ code }), false, code);
    assert.equal(isConnectionFailure(new Error('duplicate key value')), false);
  });
});
