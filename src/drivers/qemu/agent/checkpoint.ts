/**
 * Checkpoint mode (stop, save, copy, restore): the source stops its guest and saves its whole state
 * into checkpoint.bin through a unix socket in the guest's folder (no TCP port, no shell); the caller
 * downloads it and uploads it to the destination (over the agents' HTTPS when the cluster has TLS),
 * whose waiting QEMU reads it back through its own socket and resumes. Until `finish`, the source can
 * resume.
 */
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrateInfo } from '../qmp.ts';
import { HttpError } from './http-error.ts';
import { prepareStream } from './migration.ts';
import { qmpOf } from './qemu.ts';
import type { AgentHost, ManagedGuest } from './state.ts';

const checkpointFile = (guest: ManagedGuest) => path.join(guest.dir, 'checkpoint.bin');
/** The socket QEMU saves into or restores from: in the guest's own 0700 folder, short (a socket path has 107 bytes). */
const streamSocket = (guest: ManagedGuest) => path.join(guest.dir, 'mig.sock');

/** Stops the guest and saves its whole state into checkpoint.bin. */
export async function saveCheckpoint(host: AgentHost, guest: ManagedGuest, attemptId: string) {
  if (guest.role !== 'running' && guest.role !== 'checkpointing')
    throw new HttpError(409, `${guest.spec.name} is ${guest.role} here`);
  const file = checkpointFile(guest);
  const socketPath = streamSocket(guest);
  const qmp = await qmpOf(guest);
  const startedMs = Date.now();
  fs.rmSync(socketPath, { force: true });
  const sink = net.createServer();
  const received = new Promise<void>((resolve, reject) => {
    sink.once('connection', (socket) => {
      pipeline(socket, fs.createWriteStream(file)).then(resolve, reject);
    });
  });
  await new Promise<void>((resolve, reject) => {
    sink.once('error', reject);
    sink.listen(socketPath, () => resolve());
  });
  try {
    guest.role = 'checkpointing';
    host.store.save(guest);
    await qmp.execute('stop');
    await prepareStream(host, qmp, { kind: 'local' });
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    let info: MigrateInfo = {};
    for (;;) {
      info = await qmp.execute<MigrateInfo>('query-migrate');
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled')
        throw new HttpError(500, `saving the checkpoint failed: ${info['error-desc'] ?? info.status}`);
      await sleep(50);
    }
    await received;
    const bytes = fs.statSync(file).size;
    host.log.info({ vm: guest.spec.name, bytes, attemptId }, 'checkpoint saved');
    return { bytes, saveMs: Date.now() - startedMs };
  } catch (error) {
    // The guest keeps running here.
    await qmp.execute('cont').catch(() => {});
    guest.role = 'running';
    host.store.save(guest);
    throw error;
  } finally {
    sink.close();
    fs.rmSync(socketPath, { force: true });
  }
}

/** The checkpoint gives way: the guest runs on here. */
export async function resumeCheckpoint(host: AgentHost, guest: ManagedGuest) {
  if (guest.role !== 'checkpointing') return { resumed: false };
  await (await qmpOf(guest)).execute('cont');
  guest.role = 'running';
  host.store.save(guest);
  fs.rmSync(checkpointFile(guest), { force: true });
  host.log.info({ vm: guest.spec.name }, 'checkpoint abandoned; the guest runs on here');
  return { resumed: true };
}

export async function download(guest: ManagedGuest, response: http.ServerResponse): Promise<void> {
  const file = checkpointFile(guest);
  if (guest.role !== 'checkpointing' || !fs.existsSync(file))
    throw new HttpError(409, `no saved checkpoint of ${guest.spec.name} here`);
  response.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': String(fs.statSync(file).size),
  });
  await pipeline(fs.createReadStream(file), response);
}

export async function upload(guest: ManagedGuest, request: http.IncomingMessage, response: http.ServerResponse) {
  if (!waitsForCheckpoint(guest)) throw new HttpError(409, `${guest.spec.name} is not waiting for a checkpoint here`);
  const file = checkpointFile(guest);
  await pipeline(request, fs.createWriteStream(file));
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ bytes: fs.statSync(file).size }));
}

/** Feeds the uploaded checkpoint into the waiting QEMU, then resumes the guest here. */
export async function restore(host: AgentHost, guest: ManagedGuest) {
  if (!waitsForCheckpoint(guest)) throw new HttpError(409, `${guest.spec.name} is not waiting for a checkpoint here`);
  const file = checkpointFile(guest);
  if (!fs.existsSync(file)) throw new HttpError(409, `no checkpoint of ${guest.spec.name} uploaded yet`);
  const qmp = await qmpOf(guest);
  const socketPath = streamSocket(guest);
  fs.rmSync(socketPath, { force: true });
  await prepareStream(host, qmp, { kind: 'local' });
  await qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
  const socket = net.createConnection({ path: socketPath });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // QEMU closes its end as soon as it has read the stream's last section, which may come before our
  // end has finished (`Premature close`): whether the restore worked is QEMU's to say, below.
  const fed = await pipeline(fs.createReadStream(file), socket).then(
    () => '',
    (error: Error) => ` (feeding it stopped: ${error.message})`,
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = ((await qmp.execute('query-status')) as { status: string }).status;
    if (status === 'running') break;
    if (status === 'paused' || status === 'postmigrate') {
      await qmp.execute('cont');
      continue;
    }
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    if (info.status === 'failed')
      throw new HttpError(500, `restoring the checkpoint failed: ${info['error-desc'] ?? 'failed'}${fed}`);
    if (Date.now() > deadline)
      throw new HttpError(500, `restoring the checkpoint did not finish (status ${status})${fed}`);
    await sleep(50);
  }
  fs.rmSync(file, { force: true });
  fs.rmSync(socketPath, { force: true });
  host.promote(guest);
  return { running: true };
}

function waitsForCheckpoint(guest: ManagedGuest): boolean {
  return guest.role === 'incoming' && guest.incoming?.mode === 'checkpoint';
}
