import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCredentialParam, urlCredential } from '../../src/deploy/credentials.js';
import { checkManifests, parseDeployConfig } from '../../src/deploy/index.js';
import { BASE } from './helpers.js';

/**
 * One rule for credential query parameters: deploy k8s (bulwark.yaml URLs) and deploy check
 * (BW-SECRET-ENV-LITERAL) used to disagree (one caught sslpassword but not pwd, the other the reverse).
 */

const CREDENTIALS = [
  'password',
  'sslpassword',
  'passwd',
  'pwd',
  'pass',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'refresh_token',
  'api_key',
  'api-key',
  'apiKey',
  'key',
  'sig',
  'X-Amz-Signature',
  'X-Amz-Security-Token',
  'auth',
];
const SETTINGS = [
  'sslmode',
  'sslkey',
  'sslcert',
  'sslrootcert',
  'tokenUrl',
  'passthrough',
  'keepalive',
  'secretName',
  'connect_timeout',
  'application_name',
  'family',
  'db',
];

function envFlagged(value: string): boolean {
  return checkManifests([
    {
      file: 'x.yaml',
      document: 0,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'apps' },
        spec: { containers: [{ name: 'c', image: 'x', env: [{ name: 'UPSTREAM', value }] }] },
      },
    },
  ]).some((f) => f.rule === 'BW-SECRET-ENV-LITERAL');
}

describe('credential query parameters', () => {
  it('names a credential by its last word, whatever the separators and case', () => {
    for (const n of CREDENTIALS) assert.equal(isCredentialParam(n), true, n);
    for (const n of SETTINGS) assert.equal(isCredentialParam(n), false, n);
  });

  it('urlCredential finds user info or the first credential parameter, only in scheme:// strings', () => {
    assert.equal(urlCredential('postgres://app:hunter2@db:5432/app'), 'userinfo');
    assert.equal(urlCredential('redis://:pw@redis:6379'), 'userinfo');
    assert.equal(urlCredential('postgres://app@db:5432/app?sslmode=require'), undefined);
    assert.equal(urlCredential('postgres://db/app?sslmode=require&pwd=x'), 'pwd');
    assert.equal(urlCredential('https://s3/b/o?X-Amz-Signature=abc'), 'X-Amz-Signature');
    assert.equal(urlCredential('https://x/y?api%5Fkey=abc'), 'api_key'); // percent-encoded name
    assert.equal(urlCredential('https://x/y?token='), undefined); // an empty value carries nothing
    assert.equal(urlCredential('https://idp/oauth?tokenUrl=https://a/b'), undefined);
    assert.equal(urlCredential('password=x'), undefined); // not a URL
  });

  it('deploy check and deploy k8s give the same verdict on the same URL', () => {
    for (const n of [...CREDENTIALS, ...SETTINGS]) {
      const url = `postgres://bulwark@10.20.0.5:5432/audit?${encodeURIComponent(n)}=v4lue`;
      const check = envFlagged(url);
      let k8s: boolean;
      try {
        parseDeployConfig(BASE.replace('postgres://bulwark@10.20.0.5:5432/audit', url), 'b.yaml');
        k8s = false;
      } catch (e) {
        assert.match(String(e), /the URL carries a credential in its query/, n);
        k8s = true;
      }
      assert.equal(check, isCredentialParam(n), `deploy check, ${n}`);
      assert.equal(k8s, isCredentialParam(n), `deploy k8s, ${n}`);
    }
  });
});
