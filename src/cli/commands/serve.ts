import type { Command } from 'commander';
import { requireFile } from '../../core/index.js';
import { ioOf } from '../program.js';

/** `bulwark serve`: the zero-trust inference gateway. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve models through the zero-trust inference gateway (TLS 1.3, mTLS, JWT, Cedar, audit)')
    .requiredOption('--config <file>', 'gateway configuration (bulwark.yaml; see docs/gateway.md)')
    .option(
      '--check',
      'start the gateway as configured and stop it: validate, load the models, open the audit log and limiter, bind the ports (so not beside a running gateway on the same ports); the model loads are recorded in the audit log',
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
      const gw = await Gateway.start({ config, logger });
      if (o.check) {
        const models = [...gw.models.values()].map((m) => ({
          name: m.name,
          version: m.version,
          origin: m.loaded.origin,
          modelDigest: m.loaded.modelDigest,
          detectors: m.detectorSources,
        }));
        await gw.close();
        io.result(
          { ok: true, models },
          () =>
            `configuration OK; models: ${models
              .map((m) => {
                const det = Object.entries(m.detectors).map(([k, src]) => `${k} from ${src}`);
                return `${m.name}@${m.version} (${m.origin}; detectors: ${det.length > 0 ? det.join(', ') : 'none'})`;
              })
              .join(', ')}`,
        );
        return;
      }
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
