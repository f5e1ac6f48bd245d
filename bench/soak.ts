export interface SoakOptions {
  participants: number;
  simDays: number;
  pollSeconds: number;
  backfillDays: number;
  refetchDays: number;
  startAt: string;
  ownPostgres: boolean;
  log: (line: string) => void;
}
export interface SoakResult {
  participants: number;
  simDays: number;
  pollSeconds: number;
  days: Array<{ day: number; keptBytes: number; walBytes: number; events: number }>;
  bytesPerParticipant: number;
  growthDay15To30?: number;
  realSeconds: number;
}
export async function runSoak(_o: SoakOptions): Promise<SoakResult> {
  throw new Error('not yet');
}
