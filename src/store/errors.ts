/** Store failures with what the caller needs to recover: which items were not stored. */
import { StoreUnavailable } from '../errors.ts';
import type { LbvmEvent, Sample } from '../model/index.ts';

/**
 * The store did not take everything. `unwritten` holds, in their original order, exactly the items
 * that were not stored (the others were), so spooling them neither loses nor duplicates anything.
 */
export class StoreWriteFailed<T extends Sample | LbvmEvent = Sample | LbvmEvent> extends StoreUnavailable {
  constructor(
    message: string,
    readonly unwritten: T[],
    cause?: unknown,
  ) {
    super(message, cause);
    this.name = 'StoreWriteFailed';
  }
}

/** The store refused our credentials (InfluxDB 401/403). The message names the URL, never the password. */
export class StoreAuthFailed<T extends Sample | LbvmEvent = Sample | LbvmEvent> extends StoreWriteFailed<T> {
  constructor(message: string, unwritten: T[], cause?: unknown) {
    super(message, unwritten, cause);
    this.name = 'StoreAuthFailed';
  }
}
