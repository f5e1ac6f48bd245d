// A bare HTTP client in a process of its own (forked by bench/limits.ts): replays the requests a
// backfill made to the provider, `concurrency` at a time, reading and parsing each answer, and
// nothing else. The time it takes is the provider side's raw limit on this machine: the
// simulator's work and its latency, without fitlamp's fetchers around them.
export interface ReplayCommand {
  baseUrl: string;
  concurrency: number;
  requests: Array<{ url: string; authorization: string }>;
}

export interface ReplayReport {
  seconds: number;
  ok: number;
  failed: Record<string, number>;
  bytes: number;
}

process.once('message', (command: ReplayCommand) => {
  void replay(command).then(
    (report) => process.send!(report, () => process.exit(0)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});

async function replay(c: ReplayCommand): Promise<ReplayReport> {
  const report: ReplayReport = { seconds: 0, ok: 0, failed: {}, bytes: 0 };
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(c.concurrency, c.requests.length) }, async () => {
      while (next < c.requests.length) {
        const r = c.requests[next++]!;
        const response = await fetch(`${c.baseUrl}${r.url}`, { headers: { authorization: r.authorization } });
        const text = await response.text();
        report.bytes += text.length;
        JSON.parse(text);
        if (response.ok) report.ok += 1;
        else report.failed[String(response.status)] = (report.failed[String(response.status)] ?? 0) + 1;
      }
    }),
  );
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
