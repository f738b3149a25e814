import type { Command } from 'commander';
import { requireFile } from '../../core/index.js';
import { ioOf } from '../output.js';

/** `bulwark serve`: the zero-trust inference gateway. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve models through the zero-trust inference gateway (TLS 1.3, mTLS, JWT, Cedar, audit)')
    .requiredOption('--config <file>', 'gateway configuration (bulwark.yaml; see docs/gateway.md)')
    .option(
      '--check',
      'dry run: validate the configuration, load and verify the models, build the authenticator and policies, reach Redis, load the TLS certificate and key, and open the audit log read-only with the signer checked against it; nothing is written and no port is bound',
    )
    .addHelpText(
      'after',
      `
Signals: SIGHUP reloads certificates, JWKS and policies; SIGTERM/SIGINT drain requests in flight,
flush and checkpoint the audit log, and exit. Logs are JSON lines (pino) on stdout.`,
    )
    .action(async function (this: Command) {
      const o = this.opts<{ config: string; check?: boolean }>();
      const io = ioOf(this);
      await requireFile(o.config, 'gateway configuration');
      // Loaded here, not at start-up: every other command (and --help) would pay for the gateway's
      // dependencies (database and Redis clients, X.509, metrics, logging) on each start.
      const [{ Gateway, loadGatewayConfig }, { pino }] = await Promise.all([
        import('../../gateway/index.js'),
        import('pino'),
      ]);
      const config = await loadGatewayConfig(o.config);
      // Logs are JSON lines on stdout, or on stderr with --json so that stdout holds only the result.
      const logger = pino(
        {
          level: config.telemetry.logLevel,
          base: { service: 'bulwark-gateway' },
          redact: {
            paths: ['authorization', '*.authorization', 'headers', '*.headers', 'token'],
            remove: true,
          },
        },
        pino.destination(io.json ? 2 : 1),
      );
      if (o.check) {
        const r = await Gateway.check({ config, logger });
        io.result({ ok: true, ...r }, () => {
          const models = r.models.map((m) => {
            const det = Object.entries(m.detectors).map(([k, src]) => `${k} from ${src}`);
            return `${m.name}@${m.version} (${m.origin}; detectors: ${det.length > 0 ? det.join(', ') : 'none'})`;
          });
          const width = Math.max(...r.checks.map((c) => c.component.length));
          return [
            `configuration OK (dry run: nothing written, no port bound); models: ${models.join(', ')}`,
            ...r.checks.map((c) => `  ${c.component.padEnd(width)}  ${c.status.padEnd(7)}  ${c.detail}`),
          ].join('\n');
        });
        return;
      }
      const gw = await Gateway.start({ config, logger });
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGHUP', hup);
          gw.close().then(resolve, resolve);
        };
        const hup = () => void gw.reload();
        process.on('SIGHUP', hup);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
