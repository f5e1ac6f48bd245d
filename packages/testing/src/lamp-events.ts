/**
 * What lists the datums mindLAMP stored: the mindLAMP simulator's `listCorrectedDatums` (described
 * by its shape here, so this package does not depend on the simulators' types).
 */
export interface StoredLampEvents {
  listCorrectedDatums(filter: { participantId: string; sensor: string }): Array<{
    timestamp: number;
    duration?: unknown;
    value: number;
    corrections: number;
  }>;
}

/**
 * A participant's stored minute events of `sensor` (those without a duration) as [instant, value]
 * pairs, in arrival order and never collapsed: a copy shows up as an extra pair. A correction event
 * (a revision after delivery, docs/mapping.md) is added to the minute it corrects, as Cortex's sums
 * add it; a minute corrected to 0 has no value left and is left out, as the provider leaves it out.
 */
export function minuteValues(lamp: StoredLampEvents, participantId: string, sensor: string): Array<[number, number]> {
  return lamp
    .listCorrectedDatums({ participantId, sensor })
    .filter((d) => d.duration === undefined && !(d.corrections > 0 && d.value === 0))
    .map((d) => [d.timestamp, d.value]);
}
