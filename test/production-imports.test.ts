import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@fitlamp/testing';

// Test and demo tooling (packages/testing, packages/harness, packages/simulators, and each
// package's test/ folder) never reaches production code. `pnpm build` refuses a bundle that takes
// tooling in, but only sees the files a bundle reaches: this reads every source file of every
// service and production package, bundled or not, tests left out.

const TOOLING = ['testing', 'harness', 'simulators'];

/** Every service and every package that is not tooling, as `services/gateway`, `packages/db`. */
function productionUnits(): string[] {
  const units: string[] = [];
  for (const group of ['services', 'packages']) {
    for (const name of readdirSync(join(repoRoot, group))) {
      if (group === 'packages' && TOOLING.includes(name)) continue;
      if (existsSync(join(repoRoot, group, name, 'package.json'))) units.push(`${group}/${name}`);
    }
  }
  return units;
}

/** The non-test source files under `dir`. */
function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|mts|mjs|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** What `file` imports (static, dynamic, re-exports) that is tooling, as `specifier`. */
function toolingImports(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((spec) => {
      const pkg = /^@fitlamp\/([^/]+)/.exec(spec)?.[1];
      if (pkg) return TOOLING.includes(pkg);
      if (!spec.startsWith('.')) return false;
      const target = relative(repoRoot, resolve(dirname(file), spec));
      return TOOLING.some((t) => target.startsWith(`packages/${t}/`)) || /(^|\/)test\//.test(target);
    });
}

function offenders(files: readonly string[]): string[] {
  return files.flatMap((file) => toolingImports(file).map((spec) => `${relative(repoRoot, file)} imports ${spec}`));
}

describe('production code', () => {
  const units = productionUnits();

  it('imports no test or demo tooling, not even from a file no bundle reaches', () => {
    const files = units.flatMap((unit) => sourceFiles(join(repoRoot, unit, 'src')));
    expect(units).toEqual(expect.arrayContaining(['services/gateway', 'services/fetcher', 'packages/db', 'packages/provider-registry']));
    expect(files.length).toBeGreaterThan(50);
    expect(offenders(files)).toEqual([]);
  });

  it('lists no tooling among the dependencies a production install carries', () => {
    const listed = units.flatMap((unit) => {
      const manifest = JSON.parse(readFileSync(join(repoRoot, unit, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      return Object.keys(manifest.dependencies ?? {})
        .filter((d) => TOOLING.some((t) => d === `@fitlamp/${t}`))
        .map((d) => `${unit} depends on ${d}`);
    });
    expect(listed).toEqual([]);
  });

  it('is told apart from tooling by this check (the harness imports @fitlamp/testing; a test folder is tooling)', () => {
    expect(offenders(sourceFiles(join(repoRoot, 'packages/harness/src')))).toContain('packages/harness/src/stack.ts imports @fitlamp/testing');
    const gatewayTests = readdirSync(join(repoRoot, 'services/gateway/src')).filter((f) => f.endsWith('.int.test.ts'));
    expect(offenders(gatewayTests.map((f) => join(repoRoot, 'services/gateway/src', f)))).toEqual(
      expect.arrayContaining([expect.stringMatching(/imports \.\.\/test\/gateway\.ts$/)]),
    );
  });
});

describe('the simulators', () => {
  it('import nothing from the production packages they stand in for', () => {
    const files = sourceFiles(join(repoRoot, 'packages/simulators/src'));
    expect(files.length).toBeGreaterThan(20);
    const borrowed = files.flatMap((file) =>
      ts
        .preProcessFile(readFileSync(file, 'utf8'), true, true)
        .importedFiles.map((f) => f.fileName)
        .filter((spec) => spec.startsWith('@fitlamp/') || (spec.startsWith('.') && !relative(repoRoot, resolve(dirname(file), spec)).startsWith('packages/simulators/')))
        .map((spec) => `${relative(repoRoot, file)} imports ${spec}`),
    );
    expect(borrowed).toEqual([]);
  });
});
