/**
 * `/healthz` and a Prometheus `/metrics` endpoint for the monitor, on `monitor.listen`.
 * /healthz answers 200 while rounds run on time (503 when the last round is older than 3 intervals),
 * with the leader state in the body, so a supervisor can tell a stuck monitor from a standby.
 */
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parseHostPort } from '../util/address.ts';

export class MonitorMetrics {
  readonly registry = new Registry();
  readonly rounds = new Counter({
    name: 'lbvm_monitor_rounds_total',
    help: 'Rounds run, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly planSeconds = new Histogram({
    name: 'lbvm_monitor_plan_seconds',
    help: 'Time to plan one round',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly roundSeconds = new Histogram({
    name: 'lbvm_monitor_round_seconds',
    help: 'Time of one full round (read, snapshot, plan, reconcile, enqueue)',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });
  readonly movesEnqueued = new Counter({
    name: 'lbvm_moves_enqueued_total',
    help: 'Migrations enqueued by this monitor',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });
  readonly movesHeldBack = new Counter({
    name: 'lbvm_moves_held_back_total',
    help: 'Planned moves held back, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly migrationsDone = new Counter({
    name: 'lbvm_migrations_total',
    help: 'Migrations finished, by outcome (succeeded, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly imbalance = new Gauge({
    name: 'lbvm_cluster_imbalance',
    help: "Cluster imbalance score before the round's moves",
    registers: [this.registry],
  });
  readonly hostsUnknown = new Gauge({
    name: 'lbvm_hosts_unknown',
    help: 'Hosts whose samples are stale',
    registers: [this.registry],
  });
  readonly hosts = new Gauge({ name: 'lbvm_hosts', help: 'Hosts known', registers: [this.registry] });
  readonly vms = new Gauge({ name: 'lbvm_vms', help: 'VMs known', registers: [this.registry] });
  readonly leader = new Gauge({
    name: 'lbvm_monitor_leader',
    help: '1 when this monitor holds the lease',
    registers: [this.registry],
  });
  readonly fencingToken = new Gauge({
    name: 'lbvm_monitor_fencing_token',
    help: 'Fencing token held (0 when standby)',
    registers: [this.registry],
  });

  lastRoundMs = 0;
  health: () => Record<string, unknown> = () => ({});
}

export interface MetricsServer {
  address: string;
  close(): Promise<void>;
}

/** Serves /healthz and /metrics on `listen` ("host:port"; port 0 picks a free one). */
export async function serveMetrics(
  metrics: MonitorMetrics,
  listen: string,
  staleAfterMs: number,
  clock: () => number = Date.now,
): Promise<MetricsServer> {
  // A bare port listens on 127.0.0.1.
  const parsed = parseHostPort(listen.includes(':') ? listen : `127.0.0.1:${listen}`, 0);
  if (!parsed) throw new Error(`monitor.listen: "${listen}" is not host:port`);
  const { host, port } = parsed;
  const server = http.createServer((request, response) => {
    if (request.url === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        })
        .catch((error: Error) => {
          response.writeHead(500);
          response.end(error.message);
        });
      return;
    }
    if (request.url === '/healthz') {
      const ageMs = metrics.lastRoundMs ? clock() - metrics.lastRoundMs : null;
      const healthy = ageMs !== null && ageMs <= staleAfterMs;
      response.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ ok: healthy, lastRoundAgeMs: ageMs, ...metrics.health() }));
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' });
    response.end('LBVM monitor: try /healthz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : listen;
  return {
    address,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
