/**
 * The agent's guests and their state on disk. Each guest lives under `stateDir/guests/<id>/`
 * (spec.json, state.json, qmp.sock, serial.log, qemu.log, qemu.pid, checkpoint.bin); `<id>` is a hash
 * of the VM's name (guest.ts), so no name ever becomes a path. state.json is replaced atomically.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../../log.ts';
import { makeDirs } from '../../../util/dirs.ts';
import { guestId, guestSpecSchema, type GuestSpec } from '../guest.ts';
import type { MigrateInfo, QmpClient } from '../qmp.ts';
import type { MirrorState, NbdTarget } from './disks.ts';

export interface AgentOptions {
  /** This host's name (config `node`). */
  host: string;
  /** host:port to bind the control port to (port 0: any free port). */
  listen: string;
  stateDir: string;
  token: string;
  accel: 'tcg' | 'kvm';
  /** Address an incoming migration listens on. */
  migrationAddress: string;
  log: Logger;
  qemuBinary?: string;
  /** Where local disks' images live (default `stateDir/images`); a local disk's path is relative to it. */
  imagesDir?: string;
  /** The cluster's TLS (tls.*): the control port is mutual TLS; migration streams are TLS when `migration`. */
  tls?: AgentTls;
}

export interface AgentTls {
  /** PEM files: the cluster CA, this agent's certificate (server and client use) and its key. */
  ca: string;
  cert: string;
  key: string;
  migration: boolean;
}

export type GuestRole = 'running' | 'incoming' | 'checkpointing' | 'stopped';

/** A live migration this host's guest is the source of (the agent follows it, not the caller). */
export interface OutgoingMigration {
  to: string;
  uri: string;
  attemptId: string;
  startedMs: number;
  /** QEMU's migration status (`query-migrate`): see MIGRATION_IN_PROGRESS in migration.ts. */
  status: string;
  info: MigrateInfo;
  error?: string;
  autoConverge: boolean;
  dirtyBytesPerSec: number | null;
  /** Local disks being mirrored to the destination (disks.ts), as last seen. */
  mirrors?: MirrorState[];
  /** Every mirror has been started (until then, DISK_COPY means "starting them"). */
  mirrorsStarted?: boolean;
  /** When the memory migration started after the disks were copied (disks.ts). */
  memoryStartedMs?: number;
  /** The switch-over (mirrors ended in sync, then migrate-continue) has begun. */
  switching?: boolean;
}

/** A guest waiting here for its memory (live) or its saved checkpoint. */
export interface IncomingMigration {
  mode: 'live' | 'checkpoint';
  uri?: string;
  /** Whether the live stream it waits for is TLS. */
  tls?: boolean;
  /** Where this host's NBD server takes the source's disk mirrors (local disks). */
  nbd?: NbdTarget;
  attemptId: string;
  startedMs: number;
}

export interface ManagedGuest {
  spec: GuestSpec;
  id: string;
  dir: string;
  role: GuestRole;
  pid: number | null;
  qmp: QmpClient | null;
  migration?: OutgoingMigration;
  incoming?: IncomingMigration;
}

/** What is saved in state.json (the spec is in spec.json). */
interface SavedState {
  role: GuestRole;
  pid: number | null;
  incoming: IncomingMigration | null;
}

/** What every part of the agent works on: its options, its guests, and the guests it saw leave. */
export interface AgentHost {
  readonly options: AgentOptions;
  readonly log: Logger;
  /** The folder local disks' paths are relative to. */
  readonly imagesDir: string;
  readonly store: GuestStore;
  readonly guests: Map<string, ManagedGuest>;
  /** Source-side record of guests that left, so a late status call still learns the outcome. */
  readonly departed: Map<string, OutgoingMigration>;
  /** Drops a guest: out of the table, its folder removed (with its logs in the agent's log if `unexpected`). */
  forget(guest: ManagedGuest, why: string, unexpected?: boolean): void;
  /** An incoming guest runs here now. */
  promote(guest: ManagedGuest): void;
}

export class GuestStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'guests');
  }

  open(): void {
    makeDirs(this.dir, 0o700);
  }

  /** A fresh folder holding `spec` (any older folder of that name goes first), and the guest's entry. */
  create(spec: GuestSpec, role: GuestRole): ManagedGuest {
    const id = guestId(spec.name);
    const dir = path.join(this.dir, id);
    fs.rmSync(dir, { recursive: true, force: true });
    makeDirs(dir, 0o700);
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    const guest: ManagedGuest = { spec, id, dir, role, pid: null, qmp: null };
    this.save(guest);
    return guest;
  }

  save(guest: ManagedGuest): void {
    const state: SavedState = { role: guest.role, pid: guest.pid, incoming: guest.incoming ?? null };
    fs.writeFileSync(path.join(guest.dir, 'state.json.tmp'), JSON.stringify(state));
    fs.renameSync(path.join(guest.dir, 'state.json.tmp'), path.join(guest.dir, 'state.json'));
  }

  remove(guest: Pick<ManagedGuest, 'dir'>): void {
    fs.rmSync(guest.dir, { recursive: true, force: true });
  }

  /** Every guest folder found at start: the guest as it was saved, or why it cannot be read. */
  *saved(): Iterable<{ guest: ManagedGuest } | { dir: string; error: string }> {
    for (const id of fs.readdirSync(this.dir)) {
      const dir = path.join(this.dir, id);
      try {
        const spec = guestSpecSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8')));
        const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as SavedState;
        yield {
          guest: { spec, id, dir, role: state.role, pid: state.pid, qmp: null, incoming: state.incoming ?? undefined },
        };
      } catch (error) {
        yield { dir, error: (error as Error).message };
      }
    }
  }

  /** The last lines of a guest's qemu.log or serial.log, without the test guest's tick lines. */
  tail(guest: Pick<ManagedGuest, 'dir'>, file: 'qemu.log' | 'serial.log'): string {
    return readOrEmpty(path.join(guest.dir, file))
      .split('\n')
      .filter((line) => !line.startsWith('lbvm-guest: tick'))
      .slice(-15)
      .join('\n');
  }
}

export function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
