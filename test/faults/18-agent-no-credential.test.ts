/**
 * Fault 18: an agent's control port called without its credential (no Authorization header, a
 * wrong token, the token without "Bearer"): every call is refused with 401 before its body is read;
 * nothing is started, prepared, uploaded or written, and the token never reaches the agent's log.
 * With the cluster's TLS, a caller without a certificate signed by the cluster CA does not get past
 * the handshake, token or not; one with it still needs the token.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/drivers/qemu/client.ts';
import { makeClusterCerts, type ClusterCerts } from '../../src/util/certs.ts';
import { readTls } from '../../src/util/tls.ts';
import { qemuProcessesOf, startAgent, testGuestSpec, type TestAgent } from '../helpers/agent.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';

const CONTROL_CALLS = [
  'GET /v1/health',
  'POST /v1/guests/list',
  'POST /v1/guests/get',
  'POST /v1/guests/start',
  'POST /v1/guests/stop',
  'POST /v1/inventory',
  'POST /v1/incoming/prepare',
  'POST /v1/incoming/commit',
  'POST /v1/incoming/abort',
  'POST /v1/incoming/restore',
  'POST /v1/migrate/start',
  'POST /v1/migrate/status',
  'POST /v1/migrate/cancel',
  'POST /v1/checkpoint/save',
  'POST /v1/checkpoint/resume',
  'POST /v1/checkpoint/finish',
  'POST /v1/checkpoint/upload?name=intruder',
  'POST /v1/checkpoint/download',
];

describe('fault 18: agent control port without its credential', () => {
  let agent: TestAgent;
  before(async () => {
    agent = await startAgent('host-x');
  });
  after(async () => {
    await agent?.stop();
  });

  it('refuses every control call without the token, or with a wrong one; nothing started or written', async () => {
    const spec = testGuestSpec('intruder');
    const body = JSON.stringify({ spec, name: 'intruder', to: '127.0.0.1:1', attemptId: 'x', memMiB: 128 });
    const credentials: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token' },
      { authorization: agent.token },
      { authorization: `Basic ${agent.token}` },
    ];
    for (const call of CONTROL_CALLS) {
      const [method, pathname] = call.split(' ') as [string, string];
      for (const headers of credentials) {
        const response = await fetch(`http://${agent.address}${pathname}`, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          ...(method === 'POST' ? { body } : {}),
        });
        assert.equal(response.status, 401, `${call} with ${JSON.stringify(headers)}`);
        assert.match(((await response.json()) as { error: string }).error, /missing or wrong agent token/);
      }
    }
    // Nothing happened on the host.
    assert.deepEqual(qemuProcessesOf('intruder'), []);
    const guests = path.join(agent.stateDir, 'guests');
    assert.deepEqual(fs.existsSync(guests) ? fs.readdirSync(guests) : [], []);
    // With the token the same agent answers (the refusals above are about the credential only).
    assert.deepEqual((await agent.client.list()).guests, []);
    assert.ok(!agent.process.output().includes(agent.token), "the token reached the agent's log");
  });
});

/** One call to the agent over HTTPS as a stranger might make it: its answer's status, or the error that ended it. */
async function callOverTls(
  address: string,
  tls: { ca?: string; cert?: string; key?: string },
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const request = https.request(
      `https://${address}/v1/guests/start`,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, ...tls },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0 }));
        response.on('error', (error) => resolve({ error }));
      },
    );
    request.on('error', (error) => resolve({ error }));
    request.end(body);
  });
}

describe('fault 18 (TLS): the control port over mutual TLS, the token a second factor', () => {
  let agent: TestAgent;
  let certs: ClusterCerts;
  let strangers: ClusterCerts;
  before(async () => {
    const dir = tmpDir('lbvm-certs-');
    certs = await makeClusterCerts(path.join(dir, 'cluster'), {
      agents: { 'host-t': ['127.0.0.1'], 'host-wrong': ['10.9.9.9'] },
      clients: ['worker'],
      servers: { redis: ['127.0.0.1'] },
    });
    // Another CA's certificates: well formed, signed by someone the cluster does not trust.
    strangers = await makeClusterCerts(path.join(dir, 'strangers'), { clients: ['worker'] });
    agent = await startAgent('host-t', { certs });
  });
  after(async () => {
    await agent?.stop();
  });

  it('refuses a caller without a certificate of the cluster CA during the handshake, even with the token; asks for the token too', async () => {
    const spec = testGuestSpec('tls-intruder');
    const body = JSON.stringify({ spec });
    const token = { authorization: `Bearer ${agent.token}` };
    const ca = fs.readFileSync(certs.ca, 'utf8');
    const pair = (files: { cert: string; key: string }) => ({
      cert: fs.readFileSync(files.cert, 'utf8'),
      key: fs.readFileSync(files.key, 'utf8'),
    });
    const refused = {
      'no certificate': await callOverTls(agent.address, { ca }, token, body),
      "another CA's certificate": await callOverTls(
        agent.address,
        { ca, ...pair(strangers.files('worker')) },
        token,
        body,
      ),
      // Signed by the cluster CA, but for serving (Redis), not for calling.
      'a server certificate': await callOverTls(agent.address, { ca, ...pair(certs.files('redis')) }, token, body),
    };
    for (const [who, answer] of Object.entries(refused)) {
      assert.ok('error' in answer, `${who}: the agent answered HTTP ${'status' in answer ? answer.status : ''}`);
      // The TLS alert the agent sent (TLS 1.3 reports it on the client's first read), or the connection it cut.
      assert.match(
        `${answer.error.code} ${answer.error.message}`,
        /ALERT|alert|ECONNRESET|socket hang up|EPIPE/,
        `${who}: ${answer.error.message}`,
      );
    }
    assert.deepEqual(qemuProcessesOf('tls-intruder'), [], 'a guest was started without a client certificate');
    // Plain HTTP on the TLS port gets no HTTP answer either.
    const plain = await fetch(`http://${agent.address}/v1/health`).then(
      (response) => response.status,
      (error: Error) => error.message,
    );
    assert.notEqual(plain, 200);
    // A good certificate without the token: 401; with it: served.
    const noToken = await callOverTls(agent.address, { ca, ...pair(certs.files('worker')) }, {}, body);
    assert.deepEqual(noToken, { status: 401 });
    assert.deepEqual((await agent.client.list()).guests, []);
  });

  it("a caller that does not trust the agent's certificate says so, naming the agent and the TLS settings", async () => {
    const untrusting = new AgentClient(
      agent.address,
      agent.token,
      agent.host,
      readTls({ ca: strangers.ca, ...certs.files('worker') }),
    );
    await assert.rejects(untrusting.list(), (error: Error) => {
      assert.match(error.message, /agent of host-t at 127\.0\.0\.1:\d+: TLS failed: .*not trust.*tls\.ca/);
      return true;
    });
  });

  it('an agent refuses to start with a certificate unfit to serve, or not naming its address (exit 2)', async () => {
    const stateDir = tmpDir('lbvm-agent-refused-');
    const run = (files: { cert: string; key: string }) =>
      runCli('lbvm', ['agent', '--node', 'host-t', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
        env: cleanEnv({
          LBVM_AGENT_TOKEN: 'x',
          LBVM_TLS_CA: certs.ca,
          LBVM_TLS_CERT: files.cert,
          LBVM_TLS_KEY: files.key,
        }),
        timeoutMs: 30_000,
      });
    const clientOnly = await run(certs.files('worker'));
    assert.equal(clientOnly.code, 2, clientOnly.stderr);
    assert.match(clientOnly.stderr, /tls\.cert: ".*worker\.pem": expected an agent's certificate/);
    const elsewhere = await run(certs.files('host-wrong'));
    assert.equal(elsewhere.code, 2, elsewhere.stderr);
    assert.match(elsewhere.stderr, /expected a certificate naming 127\.0\.0\.1 \(agent\.listen\)/);
    for (const result of [clientOnly, elsewhere]) assert.doesNotMatch(result.stderr, /    at /);
  });
});
