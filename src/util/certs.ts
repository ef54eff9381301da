/**
 * A throwaway cluster CA and certificates made by deploy/certs.sh (openssl), for the demo, the tests
 * and the benches: the same script an operator runs, so what they test is what they ship.
 */
import path from 'node:path';
import { PACKAGE_ROOT } from './dirs.ts';
import { runFile } from './processes.ts';

/** deploy/certs.sh of this checkout (or installed package). */
export const CERTS_SCRIPT = path.join(PACKAGE_ROOT, 'deploy', 'certs.sh');

/** One certificate's files. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface ClusterCerts {
  dir: string;
  /** The CA's certificate (tls.ca). */
  ca: string;
  /** By name: agents (server and client use), clients (workers, collectors), servers (Redis, InfluxDB). */
  files(name: string): CertFiles;
}

export interface CertsSpec {
  /** Agents by name, with the addresses and names they are reached at. */
  agents?: Record<string, string[]>;
  clients?: string[];
  servers?: Record<string, string[]>;
  /** Days of validity (default 2). */
  days?: number;
}

async function certs(dir: string, days: number, args: string[]): Promise<void> {
  await runFile('bash', [CERTS_SCRIPT, '--dir', dir, '--days', String(days), ...args], { timeoutMs: 60_000 });
}

/** A new CA in `dir` and the certificates of `spec`, signed by it. */
export async function makeClusterCerts(dir: string, spec: CertsSpec): Promise<ClusterCerts> {
  const days = spec.days ?? 2;
  await certs(dir, days, ['ca']);
  const made = new Set<string>();
  for (const [name, addresses] of Object.entries(spec.agents ?? {})) {
    await certs(dir, days, ['agent', name, ...addresses]);
    made.add(name);
  }
  for (const name of spec.clients ?? []) {
    await certs(dir, days, ['client', name]);
    made.add(name);
  }
  for (const [name, addresses] of Object.entries(spec.servers ?? {})) {
    await certs(dir, days, ['server', name, ...addresses]);
    made.add(name);
  }
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    files(name) {
      if (!made.has(name)) throw new Error(`no certificate named ${JSON.stringify(name)} was made in ${dir}`);
      return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}-key.pem`) };
    },
  };
}
