/**
 * Polls `fn` every 500 ms until it answers something truthy, and answers that; throws naming
 * `what` after `timeoutMs`. For conditions a test can only observe, never for fixed sleeps.
 */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
