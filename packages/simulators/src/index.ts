// mindLAMP simulator
export { createLampSimulator, LAMP_DEFAULT_BODY_LIMIT, type LampSimulator, type LampSimulatorOptions } from './lamp/app.ts';
export type { FaultRule, FaultRuleInput, LampFault } from './lamp/faults.ts';
export {
  DEFAULT_CREDENTIAL as LAMP_DEFAULT_CREDENTIAL,
  DEFAULT_RESEARCHER_ID as LAMP_DEFAULT_RESEARCHER_ID,
  type DuplicateReport,
  type EventCounts,
  type LampCredential,
  type LampParticipantInput,
  type LampStudyInput,
  type RequestLogEntry,
  type StoredEvent,
} from './lamp/store.ts';
