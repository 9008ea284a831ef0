// Free text the components write into status (messages, reasons): cut to the schema's maxLength,
// so that a message built from user input (names, pins, lists) can always be written.

/** metav1.Condition.message's maxLength, as the schema (and the API server) enforce it. */
export const MAX_CONDITION_MESSAGE = 32768;

const MARK = ' [...]';

/**
 * `text` if it has at most `max` UTF-16 code units (what zod's max() counts; never fewer runes
 * than the API server counts), else its start and a mark saying that the rest was cut. Never
 * splits a surrogate pair.
 */
export function fitText(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= MARK.length) return text.slice(0, max);
  let cut = text.slice(0, max - MARK.length);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut + MARK;
}

/** Code-unit order, the same on every machine (localeCompare is not): for stable sorting. */
export const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
