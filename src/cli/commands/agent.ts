/** `lbvm agent`: owns this host's QEMU guests and serves the authenticated control port, until SIGTERM. */
import { Command } from 'commander';
import { Agent } from '../../drivers/qemu/agent/agent.ts';
import type { LbvmConfig } from '../../config/schema.ts';
import type { AgentTls } from '../../drivers/qemu/agent/state.ts';
import { ConfigError } from '../../errors.ts';
import { parseHostPort } from '../../util/address.ts';
import { CLIENT_AUTH, SERVER_AUTH, certificateAllows, certificateNames } from '../../util/tls.ts';
import { loggerFor } from '../../log.ts';
import { teach } from '../help.ts';
import { loadFor, withCommon, type CommonOptions, logStartup } from '../run.ts';

interface AgentOptions extends CommonOptions {
  listen?: string;
  stateDir?: string;
  node?: string;
}

export function agentCommand(): Command {
  const command = withCommon(new Command('agent'))
    .option('--listen <host:port>', 'control port address (default: agent.listen)')
    .option('--state-dir <dir>', "folder of this host's guests (default: agent.stateDir)")
    .option('--node <name>', "this host's name (default: node)");
  teach(command, {
    summary: "own this host's QEMU guests (qemu driver): start, stop, prepare incoming migrations",
    details:
      'One agent per host. It starts, stops and lists QEMU guests, reports their use, and carries out\n' +
      'its side of live and checkpoint migrations. Guests run detached and survive an agent restart (they\n' +
      'are re-adopted).\n\n' +
      'The control port is bound to agent.listen and every call needs the shared token\n' +
      'from the environment variable named by agent.tokenEnv (LBVM_AGENT_TOKEN); the token is never logged.\n' +
      'With tls.ca, tls.cert and tls.key (deploy/certs.sh agent NAME ADDRESS...) the control port is mutual\n' +
      'TLS (callers need a certificate from the cluster CA) and migration streams are TLS (tls.migration).\n\n' +
      'Several agents on one machine, each with its own --state-dir, --listen and --node, make a real cluster.',
    examples: [
      'LBVM_AGENT_TOKEN=... lbvm agent --listen 127.0.0.1:7300',
      'LBVM_AGENT_TOKEN=... lbvm agent --node n2 --listen 127.0.0.1:7302 --state-dir ./.lbvm/agent-n2',
    ],
  });
  return command.action(async (options: AgentOptions) => {
    const overrides: Record<string, unknown> = {};
    if (options.listen) overrides['agent.listen'] = options.listen;
    if (options.stateDir) overrides['agent.stateDir'] = options.stateDir;
    if (options.node) overrides.node = options.node;
    const { config, file } = loadFor(options, overrides);
    const token = process.env[config.agent.tokenEnv];
    if (!token)
      throw new ConfigError([
        `${config.agent.tokenEnv}: not set; the agent refuses to serve without a shared token (agent.tokenEnv names the variable)`,
      ]);
    const tls = agentTls(config);
    const log = loggerFor(config, 'agent');
    logStartup(log, config, file);
    const agent = new Agent({
      host: config.node,
      listen: config.agent.listen,
      stateDir: config.agent.stateDir,
      token,
      accel: config.agent.accel,
      migrationAddress: config.agent.migrationAddress,
      log,
      tls,
    });
    await agent.start();
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'stopping; guests keep running and are re-adopted at the next start');
        agent.stop().finally(() => resolve());
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  });
}

/**
 * The agent's TLS from the config, checked for an agent: its certificate must serve (the control port,
 * incoming migrations) and, to migrate guests out over TLS, connect; and name the addresses it serves
 * on, or its callers and peers refuse it. None without tls.ca.
 */
function agentTls(config: LbvmConfig): AgentTls | undefined {
  const { ca, cert, key, migration } = config.tls;
  if (!ca) return undefined;
  if (!cert || !key)
    throw new ConfigError([
      `tls.cert, tls.key: not set, with tls.ca set; an agent serves its control port over mutual TLS and needs its ` +
        `own certificate and key (deploy/certs.sh agent NAME ADDRESS...)`,
    ]);
  const problems: string[] = [];
  if (!certificateAllows(cert, migration ? [SERVER_AUTH, CLIENT_AUTH] : [SERVER_AUTH]))
    problems.push(
      `tls.cert: ${JSON.stringify(cert)}: expected an agent's certificate, for TLS servers` +
        `${migration ? ' and clients (it also opens migration streams)' : ''}; make one with deploy/certs.sh agent NAME ADDRESS...`,
    );
  const listenHost = parseHostPort(config.agent.listen, 0)?.host;
  const served: [string, string | undefined][] = [['agent.listen', listenHost]];
  if (migration) served.push(['agent.migrationAddress', config.agent.migrationAddress]);
  for (const [keyName, host] of served) {
    if (host && !/^(0\.0\.0\.0|::)$/.test(host) && !certificateNames(cert, host))
      problems.push(
        `tls.cert: ${JSON.stringify(cert)}: expected a certificate naming ${host} (${keyName}), which callers check; ` +
          `make one with deploy/certs.sh agent NAME ${host} ...`,
      );
  }
  if (problems.length) throw new ConfigError(problems);
  return { ca, cert, key, migration };
}
