import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@fitlamp/testing';

// vitest runs TypeScript without checking types; this keeps `main` type-correct under the
// strict settings of tsconfig.base.json (strict, noUncheckedIndexedAccess).
describe('the workspace', () => {
  it('type-checks', () => {
    const result = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--noEmit'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(`${result.stdout}${result.stderr}`.trim()).toBe('');
    expect(result.status).toBe(0);
  }, 180_000);
});
