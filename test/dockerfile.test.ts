import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PRODUCTION_NODE_FLAGS } from '@fitlamp/testing';

// There is no Docker engine here: this reads the Dockerfile and checks what each service image
// would hold. Each rule is a function returning problems, so the same check runs on the real file
// (no problems) and on a broken copy (the problem is found). test/build.int.test.ts builds, deploys
// and runs what these stages copy.

const root = fileURLToPath(new URL('../', import.meta.url));

/** The service images: the package `pnpm deploy` installs for it, and the bundle its CMD runs. */
const IMAGES = {
  gateway: { pkg: '@fitlamp/gateway', dir: 'services/gateway', entry: 'dist/main.js' },
  scheduler: { pkg: '@fitlamp/scheduler', dir: 'services/scheduler', entry: 'dist/main.js' },
  fetcher: { pkg: '@fitlamp/fetcher', dir: 'services/fetcher', entry: 'dist/main.js' },
  'lamp-writer': { pkg: '@fitlamp/lamp-writer', dir: 'services/lamp-writer', entry: 'dist/main.js' },
  migrate: { pkg: '@fitlamp/db', dir: 'packages/db', entry: 'dist/migrate-cli.js' },
} as const;
type Image = keyof typeof IMAGES;

/** Development and test tooling: never in a service image. */
const DEV_ONLY = /\b(tsx|vitest|playwright(-core)?|chromium|simulators|harness|@fitlamp\/testing|packages\/testing|typescript|esbuild)\b/;
const DEV_PACKAGES = ['tsx', 'vitest', 'playwright-core', 'typescript', 'esbuild', '@fitlamp/simulators', '@fitlamp/testing', '@fitlamp/harness'];

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  body: Instruction[];
}

/** Stages in order, with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ name: m?.[2] ?? `#${stages.length}`, from: m?.[1] ?? args, body: [] });
    } else {
      stages.at(-1)?.body.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

/** The stage and every stage it is built on, the stage first; ends at an outside image. */
function chain(stages: Stage[], name: string): Stage[] {
  const out: Stage[] = [];
  for (let s = stages.find((x) => x.name === name); s; s = stages.find((x) => x.name === s!.from)) {
    if (out.includes(s)) break;
    out.push(s);
  }
  return out;
}

type Manifests = Record<Image, { files?: string[]; dependencies?: Record<string, string> }>;

function checkServiceImages(text: string, manifests: Manifests): string[] {
  const problems: string[] = [];
  const stages = parseDockerfile(text);
  const build = stages.find((s) => s.name === 'build');
  const buildRun = chain(stages, 'build')
    .reverse()
    .flatMap((s) => s.body.filter((i) => i.op === 'RUN').map((i) => i.args))
    .join(' && ');
  if (!/pnpm install --frozen-lockfile/.test(buildRun)) problems.push('build: the workspace is not installed from the lockfile (pnpm install --frozen-lockfile)');

  for (const [image, { pkg, dir, entry }] of Object.entries(IMAGES) as Array<[Image, (typeof IMAGES)[Image]]>) {
    const imageStages = chain(stages, image);
    if (!imageStages.length) {
      problems.push(`${image}: no such stage`);
      continue;
    }
    const base = imageStages.at(-1)!.from;
    if (!/^node:22[\w.-]*$/.test(base)) problems.push(`${image}: built on ${base}, not a Node 22 image`);
    for (const stage of imageStages) {
      for (const { op, args } of stage.body) {
        const where = `${image}: stage ${stage.name}`;
        // Anything installed at image level would be a RUN: the image gets its packages only from the deploy.
        if (op === 'RUN') problems.push(`${where} runs "${args}"`);
        if (op === 'COPY' || op === 'ADD') {
          const from = /--from=(\S+)/.exec(args)?.[1];
          const paths = args.split(/\s+/).filter((a) => !a.startsWith('--'));
          if (!from) problems.push(`${where} copies from the build context: ${args}`);
          else if (from !== 'build' || paths[0] !== `/out/${image}` || paths.length !== 2) {
            problems.push(`${where} copies something other than its deploy directory (build:/out/${image}): ${args}`);
          }
        }
        if (DEV_ONLY.test(args)) problems.push(`${where} mentions development tooling: ${op} ${args}`);
      }
    }
    const users = imageStages.flatMap((s) => s.body.filter((i) => i.op === 'USER'));
    if (!users.length || /^(root|0)(:|$)/.test(users[0]!.args)) problems.push(`${image}: runs as root`);

    // node on the bundle with the production flags, given on the command line or in NODE_OPTIONS.
    const cmd = imageStages.flatMap((s) => s.body.filter((i) => i.op === 'CMD' || i.op === 'ENTRYPOINT'))[0];
    let argv: unknown;
    try {
      argv = JSON.parse(cmd?.args ?? '');
    } catch {
      argv = undefined;
    }
    const nodeOptions = imageStages
      .flatMap((s) => s.body.filter((i) => i.op === 'ENV'))
      .flatMap((i) => [...i.args.matchAll(/(?:^|\s)NODE_OPTIONS=("[^"]*"|\S*)/g)].map((m) => m[1]!.replace(/"/g, '')))[0];
    const flags = Array.isArray(argv) ? [...argv.slice(1, -1), ...(nodeOptions ?? '').split(/\s+/).filter(Boolean)].sort() : [];
    if (!Array.isArray(argv) || argv[0] !== 'node' || argv.at(-1) !== entry || JSON.stringify(flags) !== JSON.stringify([...PRODUCTION_NODE_FLAGS].sort())) {
      problems.push(`${image}: CMD ${cmd?.args ?? '(none)'} (NODE_OPTIONS ${nodeOptions ?? 'unset'}) is not node ${PRODUCTION_NODE_FLAGS.join(' ')} ${entry}`);
    }

    // What /out/<image> holds: scripts/build.mjs --deploy, i.e. `pnpm deploy --prod` of the
    // package (test/build.int.test.ts runs it), after the bundles are built.
    const deploy = /node scripts\/build\.mjs --deploy \/out((?:\s+[a-z-]+)*)/.exec(buildRun);
    const deployed = deploy?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
    if (!build || !deploy || (deployed.length > 0 && !deployed.includes(image))) {
      problems.push(`${image}: /out/${image} is not made by node scripts/build.mjs --deploy /out (pnpm deploy --prod of ${pkg})`);
    } else if (!(buildRun.indexOf('pnpm build') >= 0 && buildRun.indexOf('pnpm build') < deploy.index)) problems.push(`${image}: deployed before pnpm build`);

    const manifest = manifests[image];
    if (JSON.stringify(manifest.files) !== '["dist"]') problems.push(`${dir}/package.json: files is ${JSON.stringify(manifest.files)}, not ["dist"] (the deploy would copy more than the build output)`);
    for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) {
      if (range.startsWith('workspace:')) problems.push(`${dir}/package.json: ${dep} is a production dependency, but the bundle inlines it`);
      if (DEV_PACKAGES.includes(dep)) problems.push(`${dir}/package.json: ${dep} is a production dependency`);
    }
  }
  return problems;
}

const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const manifests = () =>
  Object.fromEntries(
    Object.entries(IMAGES).map(([image, { dir }]) => [image, JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'))]),
  ) as Manifests;

describe('Dockerfile', () => {
  it('gives every service an image that runs its bundle on node, with only its production install', () => {
    expect(checkServiceImages(dockerfile, manifests())).toEqual([]);
  });

  it('deploys with pnpm deploy --prod from the lockfile and the local store', () => {
    const script = readFileSync(join(root, 'scripts/build.mjs'), 'utf8');
    expect(script).toContain("spawnSync('pnpm', ['--filter', pkg, '--prod', '--offline', 'deploy', out]");
  });

  it('runs the bundles with the same node flags in pnpm start:*, db:migrate and fitlamp as in the images', () => {
    const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const expected: Record<string, [string, string]> = {
      'start:gateway': ['gateway', 'services/gateway/dist/main.js'],
      'start:scheduler': ['scheduler', 'services/scheduler/dist/main.js'],
      'start:fetcher': ['fetcher', 'services/fetcher/dist/main.js'],
      'start:lamp-writer': ['lamp-writer', 'services/lamp-writer/dist/main.js'],
      'db:migrate': ['migrate', 'packages/db/dist/migrate-cli.js'],
      fitlamp: ['gateway', 'services/gateway/dist/cli.js'],
    };
    for (const [script, [target, bundle]] of Object.entries(expected)) {
      expect(scripts[script], script).toBe(`node scripts/build.mjs --if-stale ${target} && node ${PRODUCTION_NODE_FLAGS.join(' ')} ${bundle}`);
    }
    for (const name of ['gateway', 'scheduler', 'fetcher', 'lamp-writer']) expect(scripts[`dev:${name}`]).toBe(`tsx watch services/${name}/src/main.ts`);
  });

  it('lifts the heap limit for the simulators, whose world lives in memory', () => {
    const env = chain(parseDockerfile(dockerfile), 'simulators')[0]!.body.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/(^|\s)NODE_OPTIONS=(\s|$)/);
  });

  it('keeps a simulators image for the demo profile, the only one with tsx', () => {
    const stages = parseDockerfile(dockerfile);
    const simulators = chain(stages, 'simulators');
    expect(simulators[0]?.body.find((i) => i.op === 'CMD')?.args).toMatch(/"tsx", "packages\/simulators\/src\/cli.ts"/);
    const withTsx = stages.filter((s) => s.body.some((i) => i.op === 'CMD' && /tsx/.test(i.args))).map((s) => s.name);
    expect(withTsx).toEqual(['simulators']);
  });

  it('finds tsx in a CMD, a copy of the workspace, an install in the runtime stage and a deploy with dev dependencies', () => {
    const broken = dockerfile
      .replace('CMD ["node", "--enable-source-maps", "dist/main.js"]', 'CMD ["node", "--import", "tsx", "services/gateway/src/main.ts"]')
      .replace('COPY --from=build /out/scheduler /app', 'COPY --from=workspace /app /app')
      .replace('--deploy /out gateway scheduler fetcher lamp-writer migrate', '--deploy /out gateway scheduler lamp-writer migrate && pnpm --filter @fitlamp/fetcher deploy /out/fetcher')
      .replace(/^USER node$/m, 'RUN npm install -g tsx\nUSER node');
    const problems = checkServiceImages(broken, manifests()).join('\n');
    expect(problems).toMatch(/gateway: CMD \["node", "--import", "tsx", .*\] \(NODE_OPTIONS --max-old-space-size=256\) is not node --enable-source-maps --max-old-space-size=256 dist\/main.js/);
    expect(problems).toMatch(/scheduler: stage scheduler copies something other than its deploy directory \(build:\/out\/scheduler\)/);
    expect(problems).toMatch(/fetcher: \/out\/fetcher is not made by node scripts\/build.mjs --deploy \/out \(pnpm deploy --prod of @fitlamp\/fetcher\)/);
    expect(problems).toMatch(/lamp-writer: stage runtime runs "npm install -g tsx"/);
    expect(problems).toMatch(/migrate: stage runtime mentions development tooling: RUN npm install -g tsx/);
  });

  it('finds a service image built on the workspace, copying the build context or running as root', () => {
    const broken = dockerfile
      .replace('FROM runtime AS fetcher', 'FROM workspace AS fetcher')
      .replace('COPY --from=build /out/migrate /app', 'COPY packages/db /app')
      .replace(/^USER node$/m, 'USER root');
    const problems = checkServiceImages(broken, manifests()).join('\n');
    expect(problems).toMatch(/fetcher: stage workspace copies from the build context/);
    expect(problems).toMatch(/fetcher: stage workspace runs "pnpm install --frozen-lockfile"/);
    expect(problems).toMatch(/migrate: stage migrate copies from the build context: packages\/db \/app/);
    expect(problems).toMatch(/gateway: runs as root/);
  });

  it('finds a package whose production install would carry test tooling or workspace source', () => {
    const m = manifests();
    m.gateway.dependencies = { ...m.gateway.dependencies, 'playwright-core': '^1.56.0' };
    m.fetcher.dependencies = { ...m.fetcher.dependencies, '@fitlamp/simulators': 'workspace:*' };
    m.scheduler.files = ['dist', 'src'];
    const problems = checkServiceImages(dockerfile, m).join('\n');
    expect(problems).toMatch(/services\/gateway\/package.json: playwright-core is a production dependency/);
    expect(problems).toMatch(/services\/fetcher\/package.json: @fitlamp\/simulators is a production dependency, but the bundle inlines it/);
    expect(problems).toMatch(/services\/scheduler\/package.json: files is \["dist","src"\]/);
  });
});
