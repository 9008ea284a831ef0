// How the agent reports failures: the start failure an operator must fix, and the message of
// the deepest cause, which names what is wrong where the outer error only says "fetch failed".

/** Startup failed in a way an operator must fix (API unreachable, CRDs missing, bad state file). */
export class AgentStartError extends Error {
  override name = 'AgentStartError';
}

/** The deepest cause's message: "connect ECONNREFUSED 127.0.0.1:1" rather than "fetch failed". */
export function rootMessage(err: unknown): string {
  let e: unknown = err;
  let msg = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 8 && e instanceof Error && e.cause !== undefined; depth++) {
    e = e.cause;
    if (e instanceof Error && e.message) msg = e.message;
  }
  return msg;
}

/** `p`, or an AgentStartError naming `what` once `ms` pass without an answer. */
export function withTimeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AgentStartError(`${what}: no answer within ${ms / 1000}s`)),
      ms,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
