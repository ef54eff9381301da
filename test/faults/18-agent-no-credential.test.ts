/**
 * Fault 18: an agent's control port called without its credential (no Authorization header, a
 * wrong token, the token without "Bearer"): every call is refused with 401 before its body is read;
 * nothing is started, prepared, uploaded or written, and the token never reaches the agent's log.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { qemuProcessesOf, startAgent, testGuestSpec, type TestAgent } from '../helpers/agent.ts';

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
