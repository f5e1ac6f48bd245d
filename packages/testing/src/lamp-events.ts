/**
 * What lists the events mindLAMP stored: the mindLAMP simulator's `listEvents` (described by its
 * shape here, so this package does not depend on the simulators).
 */
export interface StoredLampEvents {
  listEvents(filter: { participantId: string; sensor: string }): Array<{ event: Record<string, unknown> }>;
}

/**
 * A participant's stored minute events of `sensor` (those without a duration) as [instant, value]
 * pairs, in arrival order and never collapsed: a copy shows up as an extra pair.
 */
export function minuteValues(lamp: StoredLampEvents, participantId: string, sensor: string): Array<[number, number]> {
  return lamp
    .listEvents({ participantId, sensor })
    .filter((e) => e.event.duration === undefined)
    .map((e) => [Number(e.event.timestamp), (e.event.data as { value: number }).value]);
}
