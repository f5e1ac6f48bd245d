// Filled in by the foundation: creates the migrated template database for integration tests.
export default async function setup(): Promise<void> {}
