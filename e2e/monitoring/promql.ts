// The metric names a PromQL expression selects, so the tests can hold every alert and panel to
// metrics the components really serve. A small scanner, not a parser: enough for our queries.
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** Metric names in expr, in order of first appearance; `x_bucket` stays as written. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\b(\d+(ms|s|m|h|d|w|y))+\b/g, ' ')
    .replace(/\b\d+(\.\d+)?(e[+-]?\d+)?\b/gi, ' ');
  // A whole name not followed by "(": a function or aggregation is.
  const names = [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?![a-zA-Z0-9_:])(?!\s*\()/g)]
    .map((m) => m[0])
    .filter((n) => !KEYWORDS.has(n));
  return [...new Set(names)];
}

/** The metric family a series name belongs to, given the families a scrape declares. */
export function familyOf(name: string, families: ReadonlySet<string>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && families.has(base) ? base : undefined;
}
