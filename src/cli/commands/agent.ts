/** `lbvm agent`: owns this host's QEMU guests and serves the authenticated control port, until SIGTERM. */
import { Command } from 'commander';
import { Agent } from '../../drivers/qemu/agent/agent.ts';
import { ConfigError } from '../../errors.ts';
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
      'are re-adopted). The control port is bound to agent.listen and every call needs the shared token\n' +
      'from the environment variable named by agent.tokenEnv (LBVM_AGENT_TOKEN); the token is never logged.\n' +
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
