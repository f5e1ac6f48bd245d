// Preloaded (`NODE_OPTIONS=--import …`) into a service started by the harness with `cpuProfile`:
// Node 20 refuses `--cpu-prof` in NODE_OPTIONS, so the profiler is driven through the inspector
// instead. The in-process session answers synchronously, so the profile is written in `exit`.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.FITLAMP_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err || !result) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `CPU.${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
