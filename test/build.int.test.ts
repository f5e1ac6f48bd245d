import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  PRODUCTION_NODE_FLAGS,
  repoRoot,
  serviceTestEnv,
  startProcess,
  uniquePrefix,
  type TestDatabase,
} from '@fitlamp/testing';

// The production build for real: scripts/build.mjs bundles every target, each bundle is checked for
// what it imports, `pnpm deploy --prod` makes each image's directory exactly as the Dockerfile's
// build stage does, and every service runs from there against Postgres and Redis with nothing but
// its production dependencies. Last, a fresh copy of the repository: `pnpm install`, then
// `pnpm db:migrate` and `pnpm start:scheduler` build what they run.

const SERVICES = ['gateway', 'scheduler', 'fetcher', 'lamp-writer'] as const;
const TARGETS = {
  gateway: { pkg: '@fitlamp/gateway', dir: 'services/gateway', bundles: ['main.js', 'cli.js'] },
  scheduler: { pkg: '@fitlamp/scheduler', dir: 'services/scheduler', bundles: ['main.js'] },
  fetcher: { pkg: '@fitlamp/fetcher', dir: 'services/fetcher', bundles: ['main.js'] },
  'lamp-writer': { pkg: '@fitlamp/lamp-writer', dir: 'services/lamp-writer', bundles: ['main.js'] },
  migrate: { pkg: '@fitlamp/db', dir: 'packages/db', bundles: ['migrate-cli.js', 'migrations.js'] },
} as const;
type Target = keyof typeof TARGETS;

const FORBIDDEN = ['@fitlamp/simulators', '@fitlamp/testing', '@fitlamp/harness', 'tsx', 'vitest', 'playwright-core'];

/** The package names a bundle imports (static, dynamic and require), node builtins left out. */
function importsOf(code: string): Set<string> {
  const found = new Set<string>();
  const re = /(?:^|[\s;}])(?:import|export)\s[^"';]*?from\s*"([^"]+)"|(?:^|[\s;])import\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)|\brequire\(\s*"([^"]+)"\s*\)/gm;
  for (const m of code.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? m[4]!;
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) continue;
    const parts = spec.split('/');
    found.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  return found;
}

function dependencies(target: Target): string[] {
  const manifest = JSON.parse(readFileSync(join(repoRoot, TARGETS[target].dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  return Object.keys(manifest.dependencies ?? {}).sort();
}

/** This process's environment (pnpm finds its store and config through it) with `env` over it. */
function childEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _unused, ...rest } = process.env;
  return { ...rest, ...env };
}

function run(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const result = spawnSync(cmd, args, { cwd: options.cwd ?? repoRoot, env: childEnv(options.env), encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, lines: `${result.stdout}${result.stderr}`.split('\n').filter(Boolean) };
}

const work = mkdtempSync(join(tmpdir(), 'fitlamp-build-'));
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const d of databases) await d.drop();
  rmSync(work, { recursive: true, force: true });
});

describe('pnpm build', () => {
  let build: ReturnType<typeof run>;
  beforeAll(() => {
    build = run(process.execPath, ['scripts/build.mjs']);
  }, 120_000);

  it('bundles every service and both CLIs, reporting time and size on stderr (pnpm fitlamp prints CSV on stdout)', () => {
    expect(build.status).toBe(0);
    expect(build.stdout).toBe('');
    const lines = build.stderr.split('\n').filter(Boolean);
    expect(lines.map((l) => /^build: ([a-z-]+) \(asked\) in \d+ ms: .*KiB/.exec(l)?.[1])).toEqual(Object.keys(TARGETS));
  });

  it.each(Object.keys(TARGETS) as Target[])('%s: imports exactly its package.json dependencies; no test or dev tooling, no workspace package left unbundled', (target) => {
    const { dir, bundles } = TARGETS[target];
    const imported = new Set<string>();
    for (const bundle of bundles) {
      const file = join(repoRoot, dir, 'dist', bundle);
      const code = readFileSync(file, 'utf8');
      for (const pkg of importsOf(code)) imported.add(pkg);
      // Source maps on: the bundle points at its map, and the map at TypeScript, never at test code.
      expect(code.trimEnd().split('\n').at(-1)).toBe(`//# sourceMappingURL=${bundle}.map`);
      const { sources } = JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] };
      expect(sources.length).toBeGreaterThan(0);
      expect(sources.every((s) => s.endsWith('.ts'))).toBe(true);
      expect(sources.filter((s) => /packages\/(simulators|testing|harness)\//.test(s))).toEqual([]);
    }
    expect([...imported].filter((pkg) => FORBIDDEN.includes(pkg) || pkg.startsWith('@fitlamp/'))).toEqual([]);
    expect([...imported].sort()).toEqual(dependencies(target));
  });

  it('every service bundle stops at start with exit code 1 and one line naming a missing variable', async () => {
    const started = SERVICES.map((name) => ({ name, p: startProcess(`services/${name}/dist/main.js`, serviceTestEnv({ DATABASE_URL: undefined })) }));
    for (const { name, p } of started) {
      expect(await p.exited, name).toBe(1);
      expect(p.stderr.filter(Boolean)).toEqual([`${name}: configuration error: DATABASE_URL is required but not set`]);
    }
  });
});

describe('the production install (pnpm deploy --prod, as the Dockerfile build stage)', () => {
  const deployed = {} as Record<Target, string>;
  beforeAll(() => {
    // The Dockerfile's build stage: `node scripts/build.mjs --deploy /out`.
    const r = run(process.execPath, ['scripts/build.mjs', '--deploy', join(work, 'deploy')]);
    if (r.status !== 0) throw new Error(`deploy failed:\n${r.lines.join('\n')}`);
    for (const target of Object.keys(TARGETS) as Target[]) {
      expect(r.stderr).toMatch(new RegExp(`^deploy: ${target} \\(${TARGETS[target].pkg} --prod\\) to `, 'm'));
      deployed[target] = join(work, 'deploy', target);
    }
  }, 240_000);

  it.each(Object.keys(TARGETS) as Target[])('%s: holds the bundle and exactly its dependencies, no source and no dev tooling', (target) => {
    const out = deployed[target];
    expect(readdirSync(join(out, 'dist')).filter((f) => f.endsWith('.js')).sort()).toEqual([...TARGETS[target].bundles].sort());
    expect(existsSync(join(out, 'src'))).toBe(false);
    const topLevel = readdirSync(join(out, 'node_modules'))
      .filter((n) => !n.startsWith('.'))
      .flatMap((n) => (n.startsWith('@') ? readdirSync(join(out, 'node_modules', n)).map((s) => `${n}/${s}`) : [n]));
    expect(topLevel.sort()).toEqual(dependencies(target));
    const store = readdirSync(join(out, 'node_modules/.pnpm'));
    const dev = store.filter((entry) => /^(tsx|vitest|playwright-core|esbuild|typescript|vite)@/.test(entry) || /^@(fitlamp|vitest|esbuild)\+/.test(entry));
    expect(dev).toEqual([]);
  });

  it('every service starts from its production install against Postgres and Redis, then exits 0 on SIGTERM', async () => {
    const t = await createTestDatabase();
    databases.push(t);
    const services = SERVICES.map((name) => ({
      name,
      p: startProcess(join(deployed[name], 'dist/main.js'), serviceTestEnv({ DATABASE_URL: t.url, QUEUE_PREFIX: uniquePrefix('built'), LOG_LEVEL: 'info' })),
    }));
    try {
      await Promise.all(services.map(({ p }) => p.waitForLine(/"msg":"started"/, 45_000)));
    } finally {
      for (const { name, p } of services) expect(await p.stop('SIGTERM'), name).toBe(0);
    }
    for (const { name, p } of services) expect(p.stdout.some((l) => l.includes('"msg":"stopped"')), name).toBe(true);
  }, 90_000);

  it('migrate: migrates an empty database, lets wait-for-schema pass, and its stack traces name TypeScript files', async () => {
    const t = await createTestDatabase({ migrated: false });
    databases.push(t);
    const cli = join(deployed.migrate, 'dist/migrate-cli.js');
    const wait = join(repoRoot, 'deploy/kubernetes/base/wait-for-schema.mjs');
    const image = { FITLAMP_ROOT: deployed.migrate };

    const before = startProcess(wait, { ...image, DATABASE_URL: t.url }, ['--once']);
    expect(await before.exited).toBe(1);
    const first = startProcess(cli, { DATABASE_URL: t.url });
    expect(await first.exited).toBe(0);
    expect(first.stdout.join('\n')).toMatch(/"applied":\["2026-11-26T00-00-00-initial",.*"msg":"migrations applied"/);
    const again = startProcess(cli, { DATABASE_URL: t.url });
    expect(await again.exited).toBe(0);
    expect(again.stdout.join('\n')).toContain('"msg":"schema is up to date"');
    const after = startProcess(wait, { ...image, DATABASE_URL: t.url }, ['--once']);
    expect(await after.exited).toBe(0);
    expect(after.stdout.join('\n')).toContain('schema is at');

    const failing = startProcess(cli, { DATABASE_URL: `${t.url}_missing` });
    expect(await failing.exited).toBe(1);
    const err = JSON.parse(failing.stdout.find((l) => l.includes('"migration failed"'))!) as { err: { stack: string } };
    expect(err.err.stack).toMatch(/at migrateToLatest \(\S*\/src\/migrate\.ts:\d+:\d+\)/);
    // Six node processes one after another: on a loaded 2-core machine that can take a minute.
  }, 120_000);
});

describe('pnpm start:* and pnpm db:migrate on a fresh clone', () => {
  const clone = join(work, 'clone');
  beforeAll(() => {
    // The repository's files as git sees them (tracked and new, nothing ignored: no dist/, no node_modules).
    const files = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']).stdout.split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(repoRoot, f))) continue;
      mkdirSync(dirname(join(clone, f)), { recursive: true });
      copyFileSync(join(repoRoot, f), join(clone, f));
    }
    expect(existsSync(join(clone, 'services/scheduler/dist'))).toBe(false);
    const install = run('pnpm', ['install', '--frozen-lockfile', '--offline'], { cwd: clone });
    if (install.status !== 0) throw new Error(`pnpm install failed:\n${install.lines.join('\n')}`);
  }, 240_000);

  it('builds what it runs first, then runs the built output', async () => {
    const t = await createTestDatabase({ migrated: false });
    databases.push(t);
    const migrate = run('pnpm', ['--silent', 'db:migrate'], { cwd: clone, env: { DATABASE_URL: t.url } });
    expect(migrate.stderr).toMatch(/^build: migrate \(not built yet\) in \d+ ms/m);
    expect(migrate.status).toBe(0);
    expect(migrate.stdout).toContain('"msg":"migrations applied"');

    // pnpm → sh → node: its own process group, so SIGTERM reaches the service itself.
    const env = serviceTestEnv({ DATABASE_URL: t.url, QUEUE_PREFIX: uniquePrefix('clone'), LOG_LEVEL: 'info' });
    const proc = spawn('pnpm', ['--silent', 'start:scheduler'], { cwd: clone, env: childEnv(env), detached: true });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    let pid = 0;
    try {
      for (let i = 0; i < 600 && !stdout.includes('"msg":"started"') && proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      expect(stdout, stderr).toContain('"msg":"started"');
      expect(stderr).toMatch(/^build: scheduler \(not built yet\)/m);
      // The process that logged "started" is node on the bundle, not tsx.
      pid = (JSON.parse(stdout.split('\n').find((l) => l.includes('"msg":"started"'))!) as { pid: number }).pid;
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(1)).toEqual([
        ...PRODUCTION_NODE_FLAGS,
        'services/scheduler/dist/main.js',
      ]);
    } finally {
      process.kill(-proc.pid!, 'SIGTERM');
      await exited;
      for (let i = 0; i < 200 && pid && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
    }
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(stdout).toContain('"msg":"stopped"');
  }, 120_000);

  it('builds again only when a source of that target changed', () => {
    const fresh = run(process.execPath, ['scripts/build.mjs', '--if-stale', 'scheduler', 'migrate'], { cwd: clone });
    expect(fresh.status).toBe(0);
    expect(fresh.lines).toEqual([]);
    // A workspace package the scheduler bundles, and the migration CLI does not.
    appendFileSync(join(clone, 'packages/queues/src/catalog.ts'), '\n// changed\n');
    const changed = run(process.execPath, ['scripts/build.mjs', '--if-stale', 'scheduler', 'migrate'], { cwd: clone });
    expect(changed.status).toBe(0);
    expect(changed.lines).toHaveLength(1);
    expect(changed.lines[0]).toMatch(/^build: scheduler \(packages\/queues\/src\/catalog\.ts changed\) in \d+ ms/);
    rmSync(join(clone, 'packages/db/dist/migrations.js'));
    const missing = run(process.execPath, ['scripts/build.mjs', '--if-stale', 'migrate'], { cwd: clone });
    expect(missing.lines).toHaveLength(1);
    expect(missing.lines[0]).toMatch(/^build: migrate \(packages\/db\/dist\/migrations\.js is missing\)/);
  }, 60_000);

  it('refuses to build a bundle its package.json does not describe, or one that takes in test code', () => {
    const manifestFile = join(clone, 'services/scheduler/package.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { dependencies: Record<string, string> };
    const bundle = readFileSync(join(clone, 'services/scheduler/dist/main.js'), 'utf8');
    delete manifest.dependencies.pino;
    manifest.dependencies.tsx = '^4.20.0';
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const main = join(clone, 'services/scheduler/src/main.ts');
    writeFileSync(main, `import '@fitlamp/testing';\n${readFileSync(main, 'utf8')}`);
    const r = run(process.execPath, ['scripts/build.mjs', 'scheduler'], { cwd: clone });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('build scheduler: services/scheduler/package.json and the bundle disagree:');
    expect(r.stderr).toMatch(/bundles packages\/testing\/src\/\S+\.ts \(test or demo code\)/);
    expect(r.stderr).toContain('imports pino, which services/scheduler/package.json does not list in dependencies');
    expect(r.stderr).toContain('lists tsx in dependencies, but the bundle never imports it: move it to devDependencies');
    // Nothing written: the last good bundle stays.
    expect(readFileSync(join(clone, 'services/scheduler/dist/main.js'), 'utf8')).toBe(bundle);
  }, 60_000);
});
