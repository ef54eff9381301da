/**
 * Typed errors. Expected failures (a user's mistake, a server that is down, a refused move) carry
 * an exit code and a message that says what happened and what to do; the CLI prints the message
 * only. Anything else is a bug and is printed with its stack.
 */

export class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'ExitError';
  }
}

/** The configuration is invalid: one entry per problem, all reported at once. Exit code 2. */
export class ConfigError extends ExitError {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'), 2);
    this.name = 'ConfigError';
  }
}

/** A command-line argument is invalid (bad duration, unknown name). Exit code 2. */
export class UsageError extends ExitError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** The sample store (a folder or InfluxDB) cannot be reached or written. */
export class StoreUnavailable extends ExitError {
  constructor(message: string, cause?: unknown) {
    super(message, 3);
    this.cause = cause;
    this.name = 'StoreUnavailable';
  }
}

/** Redis cannot be reached, or is configured in a way BullMQ cannot work with. */
export class QueueUnavailable extends ExitError {
  constructor(message: string, cause?: unknown) {
    super(message, 3);
    this.cause = cause;
    this.name = 'QueueUnavailable';
  }
}

/** A move that breaks a rule (named in the message). */
export class MigrationRefused extends ExitError {
  constructor(
    message: string,
    readonly rule?: string,
  ) {
    super(message, 4);
    this.name = 'MigrationRefused';
  }
}

/** A part that exists in the command tree but is not built yet: says so loudly, exit 70 (EX_SOFTWARE). */
export class NotImplemented extends ExitError {
  constructor(what: string) {
    super(`${what} is not implemented yet in this version of LBVM. Nothing was done.`, 70);
    this.name = 'NotImplemented';
  }
}

/**
 * A driver saw a later attempt of the same migration take it over: this run lost the job (the worker
 * counts it as a lost lock, whatever its own lock said), and its result does not count.
 */
export class AttemptSuperseded extends Error {}
