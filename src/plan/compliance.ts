/**
 * Compliance profiles: the measures a regime requires of an ML system that processes its data, each
 * with the clause it answers. This is an engineering reading of the texts for the planner, not legal
 * advice; docs/threat-model.md gives the same table.
 *
 * - PCI DSS v4.0 (March 2022), Requirements 1, 2, 3, 4, 7, 8, 10.
 * - HIPAA Security Rule, 45 CFR §164.312 (technical safeguards).
 * - GDPR, Regulation (EU) 2016/679, Articles 5 and 32.
 */

export interface Requirement {
  measure: string;
  clause: string;
  text: string;
}

export interface Profile {
  id: 'pci-dss' | 'hipaa' | 'gdpr';
  name: string;
  requires: readonly Requirement[];
}

export const PROFILES: readonly Profile[] = [
  {
    id: 'pci-dss',
    name: 'PCI DSS v4.0',
    requires: [
      {
        measure: 'field-encryption',
        clause: 'Req. 3.5.1',
        text: 'PAN is rendered unreadable anywhere it is stored (strong cryptography)',
      },
      {
        measure: 'gateway',
        clause: 'Req. 4.2.1, 7.2.1, 8.3.1',
        text: 'strong cryptography in transit; access by need to know; every access authenticated',
      },
      {
        measure: 'audit-log',
        clause: 'Req. 10.2.1, 10.3.2',
        text: 'audit logs capture access to cardholder data and are protected from modification',
      },
      {
        measure: 'k8s-hardening',
        clause: 'Req. 1.3.1, 2.2.1',
        text: 'inbound traffic to the CDE restricted; system components configured to hardening standards',
      },
    ],
  },
  {
    id: 'hipaa',
    name: 'HIPAA Security Rule',
    requires: [
      {
        measure: 'field-encryption',
        clause: '45 CFR 164.312(a)(2)(iv)',
        text: 'encryption and decryption of ePHI (addressable; implemented here)',
      },
      {
        measure: 'audit-log',
        clause: '45 CFR 164.312(b)',
        text: 'audit controls that record and examine activity in systems with ePHI',
      },
      {
        measure: 'gateway',
        clause: '45 CFR 164.312(d), 164.312(e)(1)',
        text: 'person or entity authentication; transmission security',
      },
    ],
  },
  {
    id: 'gdpr',
    name: 'GDPR',
    requires: [
      {
        measure: 'field-encryption',
        clause: 'Art. 32(1)(a)',
        text: 'pseudonymisation and encryption of personal data',
      },
      {
        measure: 'gateway',
        clause: 'Art. 32(1)(b)',
        text: 'ongoing confidentiality and integrity of processing systems (access control)',
      },
      {
        measure: 'audit-log',
        clause: 'Art. 5(2)',
        text: 'accountability: the controller is able to demonstrate compliance',
      },
    ],
  },
];

export const PROFILE_IDS = PROFILES.map((p) => p.id);
