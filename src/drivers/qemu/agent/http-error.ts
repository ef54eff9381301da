/** An answer of the control port other than 200: the status, and a message the caller is shown. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
