// `pnpm build [target…]`: bundles each service (and the two CLIs) into JavaScript that production
// runs with plain `node`. esbuild inlines the workspace packages (they export TypeScript source)
// and leaves every third-party package external, resolved from node_modules at run time: the
// production install is exactly the package's `dependencies`, which this script checks.
//
//   node scripts/build.mjs                      # every target
//   node scripts/build.mjs gateway migrate      # some
//   node scripts/build.mjs --if-stale gateway   # only when dist/ is missing or its inputs changed
//   node scripts/build.mjs --deploy /out        # build if stale, then one production install per image: /out/<target>
//
// Plain JavaScript (no tsx) so that `pnpm start:*` can check freshness in a few tens of ms.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../', import.meta.url));

/**
 * What gets built. `dir` is the package whose `package.json` lists the bundle's run-time
 * dependencies (what `pnpm deploy --prod` installs in its image); output goes to `<dir>/dist/`.
 */
export const TARGETS = {
  gateway: { dir: 'services/gateway', entries: { main: 'src/main.ts', cli: 'src/cli.ts' } },
  scheduler: { dir: 'services/scheduler', entries: { main: 'src/main.ts' } },
  fetcher: { dir: 'services/fetcher', entries: { main: 'src/main.ts' } },
  'lamp-writer': { dir: 'services/lamp-writer', entries: { main: 'src/main.ts' } },
  // The migration Job's image: the CLI, and the migration list the init containers' wait-for-schema reads.
  migrate: { dir: 'packages/db', entries: { 'migrate-cli': 'src/migrate-cli.ts', migrations: 'src/migrate.ts' } },
};

/** Never in a production bundle: test and demo tooling. */
const FORBIDDEN_INPUTS = ['packages/simulators/', 'packages/testing/', 'packages/harness/'];
const FORBIDDEN_IMPORTS = ['tsx', 'vitest', 'playwright-core', '@fitlamp/simulators', '@fitlamp/testing', '@fitlamp/harness'];
/** Besides the bundle's own inputs, a change here means a rebuild. */
const CONFIG_INPUTS = ['scripts/build.mjs', 'tsconfig.json', 'tsconfig.base.json', 'pnpm-lock.yaml'];
const INFO_FILE = '.build-info.json';
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** `pino` for `pino`, `@bull-board/api` for `@bull-board/api/bullMQAdapter`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const thirdPartyExternal = {
  name: 'third-party-external',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('@fitlamp/')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function infoPath(name) {
  return join(root, TARGETS[name].dir, 'dist', INFO_FILE);
}

/** Why `name` needs building (missing output, a changed input), or null when dist/ is current. */
export function staleReason(name) {
  const target = TARGETS[name];
  let info;
  try {
    info = JSON.parse(readFileSync(infoPath(name), 'utf8'));
  } catch {
    return 'not built yet';
  }
  for (const out of info.outputs ?? []) if (!existsSync(join(root, out))) return `${out} is missing`;
  for (const [file, hash] of Object.entries(info.inputs ?? {})) {
    let now;
    try {
      now = sha256(join(root, file));
    } catch {
      return `${file} is gone`;
    }
    if (now !== hash) return `${file} changed`;
  }
  if (!info.inputs?.[`${target.dir}/package.json`]) return 'built by another version of this script';
  return null;
}

/**
 * Bundles one target into `<dir>/dist/`, each file written beside and renamed into place, so a
 * process starting meanwhile reads the old bundle or the new one, never half of one.
 */
export async function buildTarget(name) {
  const esbuild = await import('esbuild');
  const target = TARGETS[name];
  const dir = join(root, target.dir);
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const started = performance.now();
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(Object.entries(target.entries).map(([out, src]) => [out, join(target.dir, src)])),
    outdir: join(target.dir, 'dist'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    // Node 20 syntax; the images run Node 22 and the code stays Node 24 clean.
    target: 'node20',
    // `node --enable-source-maps`: stack traces name the TypeScript file and line.
    sourcemap: 'linked',
    sourcesContent: false,
    plugins: [thirdPartyExternal],
    metafile: true,
    write: false,
    logLevel: 'warning',
  });

  const problems = [];
  const inputs = Object.keys(result.metafile.inputs);
  for (const input of inputs) {
    if (FORBIDDEN_INPUTS.some((p) => input.startsWith(p))) problems.push(`bundles ${input} (test or demo code)`);
    if (input.includes('node_modules/')) problems.push(`bundles ${input} (third-party code belongs in node_modules, external)`);
  }
  const imported = new Set();
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) {
      if (!imp.external || builtins.has(imp.path)) continue;
      const pkg = packageOf(imp.path);
      if (FORBIDDEN_IMPORTS.includes(pkg)) problems.push(`imports ${imp.path} (test or dev tooling)`);
      imported.add(pkg);
    }
  }
  const declared = manifest.dependencies ?? {};
  for (const pkg of [...imported].sort()) {
    if (!declared[pkg]) problems.push(`imports ${pkg}, which ${target.dir}/package.json does not list in dependencies`);
  }
  for (const [pkg, range] of Object.entries(declared)) {
    if (String(range).startsWith('workspace:')) problems.push(`lists ${pkg} in dependencies, but it is inlined at build time: move it to devDependencies`);
    else if (!imported.has(pkg)) problems.push(`lists ${pkg} in dependencies, but the bundle never imports it: move it to devDependencies`);
  }
  if (problems.length) throw new Error(`build ${name}: ${target.dir}/package.json and the bundle disagree:\n  ${problems.join('\n  ')}`);

  mkdirSync(join(dir, 'dist'), { recursive: true });
  rmSync(infoPath(name), { force: true });
  const outputs = [];
  for (const file of result.outputFiles) {
    const tmp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
    outputs.push(relative(root, file.path));
  }
  const hashed = [...inputs, ...CONFIG_INPUTS, `${target.dir}/package.json`];
  const info = {
    esbuild: esbuild.version,
    outputs,
    externals: [...imported].sort(),
    inputs: Object.fromEntries(hashed.map((f) => [f, sha256(join(root, f))])),
  };
  writeFileSync(infoPath(name), `${JSON.stringify(info, null, 2)}\n`);
  const bytes = Object.fromEntries(
    result.outputFiles.filter((f) => f.path.endsWith('.js')).map((f) => [relative(join(dir, 'dist'), f.path), f.contents.length]),
  );
  return { name, ms: performance.now() - started, bytes, inputs: inputs.length, externals: info.externals };
}

/**
 * Packages pnpm links into a `--prod` install although nothing imports them at run time: a
 * devDependency somewhere in the workspace that satisfies a production package's optional peer
 * (pnpm/pnpm#15344, open in pnpm 12: valibot, under @bull-board/api, has an optional peer on
 * typescript, 23 MB). Removed from the deploy, with the links to them.
 */
const OPTIONAL_PEERS_NOT_SHIPPED = ['typescript'];

/**
 * What an image gets: `pnpm deploy --prod` of the target's package into `<outRoot>/<name>`, i.e.
 * its package.json, its dist/ (`files`) and a node_modules with its `dependencies` only, from the
 * lockfile and the local store (never the network).
 */
export function deployTarget(name, outRoot) {
  const target = TARGETS[name];
  const pkg = JSON.parse(readFileSync(join(root, target.dir, 'package.json'), 'utf8')).name;
  const out = resolve(outRoot, name);
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync('pnpm', ['--filter', pkg, '--prod', '--offline', 'deploy', out], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`deploy ${name}: pnpm deploy failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  const store = join(out, 'node_modules/.pnpm');
  const removed = [];
  // Each package's own links (.pnpm/<pkg>/node_modules/<peer>) and pnpm's hoisted ones (.pnpm/node_modules/<peer>).
  for (const entry of ['.', ...readdirSync(store, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)]) {
    if (OPTIONAL_PEERS_NOT_SHIPPED.some((p) => entry.startsWith(`${p}@`))) {
      rmSync(join(store, entry), { recursive: true, force: true });
      removed.push(entry);
    }
    for (const peer of OPTIONAL_PEERS_NOT_SHIPPED) {
      const link = join(store, entry, 'node_modules', peer);
      if (lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) rmSync(link);
    }
  }
  return { name, pkg, out, removed };
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'if-stale': { type: 'boolean', default: false },
      deploy: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: node scripts/build.mjs [--if-stale] [--deploy DIR] [${Object.keys(TARGETS).join('|')}]...\n`);
    return 0;
  }
  const names = positionals.length ? positionals : Object.keys(TARGETS);
  const unknown = names.filter((n) => !(n in TARGETS));
  if (unknown.length) {
    process.stderr.write(`build: unknown target ${unknown.join(', ')} (known: ${Object.keys(TARGETS).join(', ')})\n`);
    return 2;
  }
  for (const name of names) {
    // Deploying packs what is built: it builds only what is missing or stale.
    const reason = values['if-stale'] || values.deploy ? staleReason(name) : 'asked';
    if (!reason) continue;
    try {
      const r = await buildTarget(name);
      const sizes = Object.entries(r.bytes).map(([f, n]) => `${f} ${(n / 1024).toFixed(0)} KiB`).join(', ');
      // stderr: `pnpm fitlamp` prints CSV on stdout.
      process.stderr.write(`build: ${name} (${reason}) in ${r.ms.toFixed(0)} ms: ${sizes}; ${r.inputs} sources, external: ${r.externals.join(' ')}\n`);
    } catch (error) {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    }
  }
  if (values.deploy) {
    for (const name of names) {
      try {
        const d = deployTarget(name, values.deploy);
        const note = d.removed.length ? `; removed ${d.removed.join(', ')} (an optional peer nothing imports)` : '';
        process.stderr.write(`deploy: ${name} (${d.pkg} --prod) to ${d.out}${note}\n`);
      } catch (error) {
        process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
        return 1;
      }
    }
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = await main();
