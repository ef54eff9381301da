/**
 * The demo's live view: hosts' CPU bars, each decision with its reason, each migration with its
 * progress and downtime. On a terminal it redraws one screen; otherwise it prints lines as they
 * come (and the bars every few seconds), so a log or CI shows the same story.
 */
import { formatBytes, formatDuration } from '../../units.ts';
import { bar } from '../render.ts';

export interface HostLine {
  host: string;
  cpuUsedCores: number;
  cpuCores: number;
  memUsedBytes: number;
  memBytes: number;
  /** Memory committed to the host's VMs (their configured sizes), when the collector reported it. */
  memCommittedBytes?: number;
  vms: number;
}

export interface ActiveMigration {
  vm: string;
  from: string;
  to: string;
  fraction: number;
  bytesCopied: number;
  bytesRemaining: number;
}

export class DemoView {
  private hosts: HostLine[] = [];
  private readonly log: string[] = [];
  private active: ActiveMigration[] = [];
  private status = '';
  private lastPlainBarsMs = 0;
  private readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly title: string,
    private readonly startedMs: number,
  ) {
    this.tty = out.isTTY === true && process.env.TERM !== 'dumb';
  }

  setHosts(hosts: HostLine[]): void {
    this.hosts = hosts;
  }

  setActive(active: ActiveMigration[]): void {
    this.active = active;
  }

  setStatus(text: string): void {
    this.status = text;
  }

  /** A line in the story: a decision, a migration start/end, a phase of the demo. */
  say(line: string): void {
    const stamped = `${formatDuration(Date.now() - this.startedMs).padStart(6)}  ${line}`;
    this.log.push(stamped);
    if (this.log.length > 200) this.log.shift();
    if (!this.tty) this.out.write(`${stamped}\n`);
  }

  render(): void {
    if (!this.tty) {
      if (this.hosts.length > 0 && Date.now() - this.lastPlainBarsMs > 10_000) {
        this.lastPlainBarsMs = Date.now();
        this.out.write(`${this.hostLines(30).join('\n')}\n`);
      }
      return;
    }
    const rows = this.out.rows ?? 40;
    const screen: string[] = [`\u001b[1m${this.title}\u001b[0m  ${this.status}`, ''];
    const hostLines = this.hostLines(Math.max(10, Math.min(40, (this.out.columns ?? 100) - 60)));
    const maxHosts = Math.max(3, Math.min(hostLines.length, rows - 14));
    screen.push(...hostLines.slice(0, maxHosts));
    if (hostLines.length > maxHosts) screen.push(`  ... ${hostLines.length - maxHosts} more hosts`);
    screen.push('');
    for (const migration of this.active.slice(0, 4)) {
      screen.push(
        `  ⇄ ${migration.vm} ${migration.from} → ${migration.to}  ${bar(migration.fraction, 20)} ${Math.round(migration.fraction * 100)}% ` +
          ` ${formatBytes(migration.bytesCopied)} copied, ${formatBytes(migration.bytesRemaining)} left`,
      );
    }
    if (this.active.length > 4) screen.push(`  ... ${this.active.length - 4} more migrations running`);
    screen.push('');
    const room = Math.max(3, rows - screen.length - 1);
    screen.push(...this.log.slice(-room));
    this.out.write(`\u001b[H\u001b[2J${screen.join('\n')}\n`);
  }

  private hostLines(width: number): string[] {
    const nameWidth = Math.max(4, ...this.hosts.map((h) => h.host.length));
    return this.hosts.map((host) => {
      const share = host.cpuCores > 0 ? host.cpuUsedCores / host.cpuCores : 0;
      const mem = host.memBytes > 0 ? host.memUsedBytes / host.memBytes : 0;
      return (
        `  ${host.host.padEnd(nameWidth)} CPU ${bar(share, width)} ${String(Math.round(share * 100)).padStart(3)}% ` +
        ` mem ${String(Math.round(mem * 100)).padStart(3)}%  ${host.vms} VMs`
      );
    });
  }

  /** Leaves the screen with the final story printed plainly. */
  finish(): void {
    if (this.tty)
      this.out.write(`\u001b[H\u001b[2J${[...this.hostLines(30), '', ...this.log.slice(-30)].join('\n')}\n`);
  }
}
