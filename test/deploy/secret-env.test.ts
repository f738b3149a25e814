import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkManifests } from '../../src/deploy/index.js';

/**
 * BW-SECRET-ENV-LITERAL, red-team findings: a connection string with its password, key material under a
 * name ending in KEY, and a secret-named variable whose value looks like a setting were not flagged.
 */

function flagged(env: Array<{ name: string; value: string | number }>): string[] {
  return env
    .filter((e) =>
      checkManifests([
        {
          file: 'x.yaml',
          document: 0,
          object: {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'p', namespace: 'apps' },
            spec: { containers: [{ name: 'c', image: 'x', env: [e] }] },
          },
        },
      ]).some((f) => f.rule === 'BW-SECRET-ENV-LITERAL'),
    )
    .map((e) => e.name);
}

describe('BW-SECRET-ENV-LITERAL: red-team findings', () => {
  it('flags URLs that carry a credential, key material under *_KEY, and any value of a secret-named variable', () => {
    const secrets = [
      { name: 'DATABASE_URL', value: 'postgres://app:hunter2@db:5432/app' },
      { name: 'REDIS_URL', value: 'redis://:s3cretpw@redis:6379' },
      { name: 'WEBHOOK', value: 'https://hooks.example.com/in?token=abcdef123' },
      { name: 'STRIPE_KEY', value: 'sk_live_4eC39HqLyjWDarjtT1zdp7dc' },
      { name: 'HMAC_KEY', value: 'c2VjcmV0LWtleS1tYXRlcmlhbA==' },
      { name: 'HSM_PIN', value: '1' },
      { name: 'DB_PASSWORD', value: 'true' },
      { name: 'AUTH_TOKEN', value: '30s' },
    ];
    assert.deepEqual(
      flagged(secrets),
      secrets.map((e) => e.name),
    );
  });

  it('still leaves settings alone', () => {
    assert.deepEqual(
      flagged([
        { name: 'SORT_KEY', value: 'name' },
        { name: 'CACHE_KEY_PREFIX', value: 'bulwark:' },
        { name: 'PARTITION_KEY', value: 'tenant_id' },
        { name: 'AUTH_URL', value: 'https://idp.example.com/oauth?client=app' },
        { name: 'DATABASE_URL', value: 'postgres://app@db:5432/app?sslmode=require' },
        { name: 'USE_TOKEN', value: '1' },
        { name: 'REQUIRE_PASSWORD', value: 'true' },
        { name: 'TOKEN_TTL', value: '30s' },
        { name: 'KEY_ROTATION_DAYS', value: '30' },
        { name: 'API_KEY_FILE', value: '/etc/bulwark/model-key/api' },
      ]),
      [],
    );
  });
});
