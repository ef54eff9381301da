/** Command-line option values checked as the user typed them: a UsageError names the flag, the value and what was expected. */
import { UsageError } from '../errors.ts';

/** `text` as a number within bounds, or a UsageError naming `flag`, the value and the bounds. */
export function numberOption(
  text: string,
  flag: string,
  { integer = false, min = 0, max = Number.POSITIVE_INFINITY, exclusiveMin = false } = {},
): number {
  const value = Number(text);
  const expected = `${integer ? 'a whole number' : 'a number'} ${exclusiveMin ? '>' : '>='} ${min}${Number.isFinite(max) ? ` and <= ${max}` : ''}`;
  if (
    text.trim() === '' ||
    !Number.isFinite(value) ||
    (integer && !Number.isInteger(value)) ||
    (exclusiveMin ? value <= min : value < min) ||
    value > max
  ) {
    throw new UsageError(`${flag}: "${text}": expected ${expected}`);
  }
  return value;
}
