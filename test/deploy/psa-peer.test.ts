import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkManifests, parseManifests } from '../../src/deploy/index.js';
import { ROOT } from '../helpers/cli.js';

/**
 * Peer check: the pod-security-admission controller's own test fixtures (kubernetes/pod-security-
 * admission, test/testdata/<level>/v<version>/{pass,fail}/*.yaml) — every `pass` pod must get no Pod
 * Security finding at that level, every `fail` pod at least one, of the control its file is named
 * after. The fixtures are Apache-2.0 code of a peer, so they are not committed: fetch them into
 * bench/peers/pod-security-admission/ (git-ignored; see docs/deploy.md) or point BULWARK_PSA_TESTDATA
 * at a test/testdata folder.
 */

const DATA =
  process.env['BULWARK_PSA_TESTDATA'] ??
  join(ROOT, 'bench', 'peers', 'pod-security-admission', 'test', 'testdata');
const VERSION = process.env['BULWARK_PSA_VERSION'] ?? 'v1.37';

/** PSA check id (fixture name prefix) → our rule. */
const RULE_OF: Record<string, string> = {
  allowprivilegeescalation: 'PSS-R-PRIVILEGE-ESCALATION',
  apparmorprofile: 'PSS-B-APPARMOR',
  capabilities_baseline: 'PSS-B-CAPABILITIES',
  capabilities_restricted: 'PSS-R-CAPABILITIES',
  hostnamespaces: 'PSS-B-HOST-NAMESPACES',
  hostpathvolumes: 'PSS-B-HOST-PATH',
  hostports: 'PSS-B-HOST-PORTS',
  hostprobesandhostlifecycle: 'PSS-B-HOST-PROBES',
  privileged: 'PSS-B-PRIVILEGED',
  procmount: 'PSS-B-PROC-MOUNT',
  procmount_restricted: 'PSS-R-PROC-MOUNT',
  restrictedvolumes: 'PSS-R-VOLUME-TYPES',
  runasnonroot: 'PSS-R-RUN-AS-NON-ROOT',
  runasuser: 'PSS-R-RUN-AS-USER',
  seccompprofile_baseline: 'PSS-B-SECCOMP',
  seccompprofile_restricted: 'PSS-R-SECCOMP',
  selinuxoptions: 'PSS-B-SELINUX',
  sysctls: 'PSS-B-SYSCTLS',
  windowshostprocess: 'PSS-B-HOST-PROCESS',
};

describe(`Pod Security checks agree with pod-security-admission's fixtures (${VERSION})`, () => {
  if (!existsSync(join(DATA, 'restricted', VERSION))) {
    it('fixtures absent: skipped', (t) => {
      t.skip(
        `pod-security-admission testdata not found at ${DATA}/<level>/${VERSION} (see docs/deploy.md to fetch it)`,
      );
    });
    return;
  }
  for (const level of ['baseline', 'restricted'] as const) {
    it(`${level}: every pass fixture passes, every fail fixture fails on its control`, () => {
      let pass = 0;
      let fail = 0;
      for (const kind of ['pass', 'fail'] as const) {
        const dir = join(DATA, level, VERSION, kind);
        for (const f of readdirSync(dir)
          .filter((x) => x.endsWith('.yaml'))
          .sort()) {
          const file = join(dir, f);
          const findings = checkManifests(parseManifests(readFileSync(file, 'utf8'), file), { level }).filter(
            (x) => x.level !== 'hardening',
          );
          if (kind === 'pass') {
            assert.deepEqual(
              findings.map((x) => `${x.rule} ${x.path}`),
              [],
              `${level}/${kind}/${f}`,
            );
            pass++;
          } else {
            const control = f.replace(/\d*\.yaml$/, '');
            const rule = RULE_OF[control];
            assert.ok(rule, `unknown control ${control}: a control the checker does not know`);
            assert.ok(
              findings.some((x) => x.rule === rule),
              `${level}/fail/${f}: expected ${rule}, got ${findings.map((x) => x.rule).join(', ') || 'nothing'}`,
            );
            fail++;
          }
        }
      }
      assert.ok(pass >= 10 && fail >= 30, `${pass} pass and ${fail} fail fixtures`);
    });
  }
});
