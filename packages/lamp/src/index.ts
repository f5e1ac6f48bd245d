export {
  createLampClient,
  LampError,
  type LampClient,
  type LampClientOptions,
  type LampErrorCode,
  type ListSensorEventsOptions,
  type SensorEvent,
} from './client.ts';
