/**
 * The minimal bulwark.yaml the deploy review tests start from (generate-redteam, review-open-items):
 * Redis limits, a PostgreSQL audit log, one ingress namespace, the image pinned by digest.
 */
export const DIGEST = `sha256:${'ab'.repeat(32)}`;
export const BASE = `server:
  host: 0.0.0.0
  port: 8443
  tls: { cert: /etc/bulwark/tls/tls.crt, key: /etc/bulwark/tls/tls.key }
metrics: { host: 0.0.0.0, port: 9464 }
limits:
  backend: redis
  redis: { url: "redis://redis.data.svc.cluster.local:6380/0" }
audit:
  store: "postgres://bulwark@10.20.0.5:5432/audit"
deploy:
  namespace: bulwark
  image: registry.example.com/bulwark/gateway:0.1.0@${DIGEST}
  ingressFrom:
    - { namespace: payments }
  monitoringNamespace: monitoring
  secrets: { tls: bulwark-tls, modelKey: bulwark-model-key }
`;
