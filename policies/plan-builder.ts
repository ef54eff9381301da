/** What every policy does with its decisions: moves with reasons, skips with named reasons, notes. */
import type { Move, Plan, Skip } from '../src/model/index.ts';
import { migrationCost } from './cost.ts';
import type { Refusal } from './constraints.ts';
import { gib, pct } from './format.ts';
import type { Cluster, HostLoad, VmLoad } from './cluster.ts';

/** Skips kept per plan; more are counted in a note (a 30,000-VM plan must stay readable). */
const MAX_SKIPS = 300;

export class PlanBuilder {
  readonly moves: Move[] = [];
  readonly skipped: Skip[] = [];
  readonly notes: string[] = [];
  private readonly seen = new Set<string>();
  private dropped = 0;
  readonly scoreBefore: number;

  constructor(
    readonly policy: string,
    readonly cluster: Cluster,
    readonly budget: number,
  ) {
    this.scoreBefore = cluster.imbalance();
  }

  get remaining(): number {
    return this.budget - this.moves.length;
  }

  skip(refusal: Refusal, vm?: VmLoad, host?: HostLoad): void {
    const key = `${refusal.reason}|${vm?.name ?? ''}|${host?.name ?? ''}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.skipped.length >= MAX_SKIPS) {
      this.dropped++;
      return;
    }
    const skip: Skip = { reason: refusal.reason, detail: refusal.detail };
    if (vm) skip.vm = vm.name;
    if (host) skip.host = host.name;
    this.skipped.push(skip);
  }

  /**
   * Cost of moving vm to dest in the current working state. A move is valued at the VM's whole memory,
   * not the memory in use that QEMU would actually send (migrationCost's last argument): on the shared
   * traces, moves valued at half their price made the default level move 66% more VMs for no flatter
   * cluster and more overloads (bench quality, bitbrains 2013-8 at 55%: 1,057 migrations and 951
   * overloaded host-steps against 637 and 731). The price is a brake on churn as much as a time.
   */
  cost(vm: VmLoad, dest: HostLoad) {
    const source = this.cluster.hostOf(vm);
    return migrationCost(
      vm.memBytes,
      vm.state.memDirtyBytesPerSec,
      cpuShare(source),
      cpuShare(dest),
      this.cluster.settings.cost,
      vm.state.localDiskBytes ?? 0,
    );
  }

  /**
   * Applies the move to the working state and records it; `why` is the reason's first clause. The
   * move's gain is the drop of the imbalance score, or `value` (objective.ts) for policies that weigh moves.
   */
  move(vm: VmLoad, dest: HostLoad, why: string, extra = '', value?: number): Move {
    const cluster = this.cluster;
    const source = cluster.hostOf(vm);
    const cost = this.cost(vm, dest);
    const before = cluster.imbalance();
    const destBefore = cpuShare(dest);
    const sourceBefore = cpuShare(source);
    cluster.apply(vm, dest);
    const gain = before - cluster.imbalance();
    const reason =
      `${why}: ${vm.name} (${vm.cpuDemandCores.toFixed(2)} cores, ${gib(vm.memBytes)}) to ${dest.name}, ${pct(destBefore)} → ${pct(cpuShare(dest))}` +
      ` (${source.name} ${pct(sourceBefore)} → ${pct(cpuShare(source))}); imbalance ${before.toFixed(3)} → ${(before - gain).toFixed(3)}, ` +
      `gain ${gain.toFixed(4)}, cost ${cost.score.toFixed(4)} (${gib(cost.bytes)} to copy, ${(cost.durationMs / 1000).toFixed(1)}s in all)${extra}`;
    const move: Move = {
      vm: vm.name,
      from: source.name,
      to: dest.name,
      policy: this.policy,
      reason,
      gain: value ?? gain,
      cost,
    };
    this.moves.push(move);
    return move;
  }

  build(extra: Partial<Plan> = {}): Plan {
    if (this.dropped > 0) this.notes.push(`${this.dropped} more skipped candidates not listed`);
    return {
      policy: this.policy,
      moves: this.moves,
      scoreBefore: this.scoreBefore,
      scoreAfter: this.cluster.imbalance(),
      skipped: this.skipped,
      notes: this.notes,
      ...extra,
    };
  }
}

export function cpuShare(h: HostLoad): number {
  return h.cpuCores > 0 ? h.cpuDemandCores / h.cpuCores : 0;
}

export function memShare(h: HostLoad): number {
  return h.memBytes > 0 ? h.memCommittedBytes / h.memBytes : 0;
}

/**
 * A host's use as the policies judge it, in words: predicted CPU, and memory committed to VMs (their
 * configured sizes) with the memory measured in use beside it, so no view shows one as the other.
 */
export function describeUse(h: HostLoad): string {
  const used = h.memBytes > 0 ? h.state.memUsedBytes / h.memBytes : 0;
  return `CPU ${pct(cpuShare(h))}, memory ${pct(memShare(h))} committed (${pct(used)} used)`;
}
