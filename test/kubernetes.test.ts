import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { migrateToLatest, migrations } from '../packages/db/src/migrate.ts';
import { queueCatalog } from '@fitlamp/queues';
import { buildIfStale, createTestDatabase, serviceTestEnv, startProcess, type TestDatabase } from '@fitlamp/testing';
import { loadGatewayEnv, gatewayEnvSchema } from '../services/gateway/src/env.ts';
import { loadSchedulerEnv, schedulerEnvSchema } from '../services/scheduler/src/env.ts';
import { loadFetcherEnv, fetcherEnvSchema } from '../services/fetcher/src/env.ts';
import { loadLampWriterEnv, lampWriterEnvSchema } from '../services/lamp-writer/src/env.ts';

// Renders every overlay with `kubectl kustomize`, validates every object against the Kubernetes
// schemas (kubernetes-models: the Kubernetes OpenAPI and KEDA's CRD, offline), then checks the
// deployment's invariants. Each invariant is a function returning problems, so the same check
// runs on the real render (no problems) and on a broken copy (the problem is found).

const root = fileURLToPath(new URL('../', import.meta.url));
const k8s = join(root, 'deploy/kubernetes');
const overlays = readdirSync(join(k8s, 'overlays')).sort();

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

function render(overlay: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', join(k8s, 'overlays', overlay)], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter(Boolean);
}
const renders: Record<string, Obj[]> = Object.fromEntries(overlays.map((o) => [o, render(o)]));

const models: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

/** Schema errors of one object ("" when valid); an object of a kind we have no schema for is an error. */
function schemaErrors(obj: Obj): string {
  const Model = models[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) return `${obj.apiVersion} ${obj.kind} ${obj.metadata?.name}: no schema to validate against`;
  try {
    new Model(structuredClone(obj)).validate();
    return '';
  } catch (error) {
    return `${obj.kind}/${obj.metadata.name}: ${(error as Error).message}`;
  }
}

const SERVICES = ['gateway', 'scheduler', 'fetcher', 'lamp-writer'] as const;
type ServiceName = (typeof SERVICES)[number];
const loaders: Record<ServiceName, { load: (env: Record<string, string>) => unknown; keys: string[] }> = {
  gateway: { load: loadGatewayEnv, keys: Object.keys(gatewayEnvSchema.shape) },
  scheduler: { load: loadSchedulerEnv, keys: Object.keys(schedulerEnvSchema.shape) },
  fetcher: { load: loadFetcherEnv, keys: Object.keys(fetcherEnvSchema.shape) },
  'lamp-writer': { load: loadLampWriterEnv, keys: Object.keys(lampWriterEnvSchema.shape) },
};
const knownVariables = new Set(Object.values(loaders).flatMap((l) => l.keys));

/** What an operator puts in the Secret, in valid form (test values, never real ones). */
const secretSamples: Record<string, string> = {
  ...serviceTestEnv(),
  GOOGLE_HEALTH_WEBHOOK_SECRET: 'Bearer 0123456789abcdef0123',
  TOKEN_ENCRYPTION_KEY_PREVIOUS: `old:${Buffer.alloc(32, 7).toString('base64')}`,
  POSTGRES_PASSWORD: 'pw',
};

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const find = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const fitlampDeployments = (objs: Obj[]) =>
  byKind(objs, 'Deployment').filter((d) => d.spec.template.metadata.labels?.['app.kubernetes.io/name'] === 'fitlamp');
const podSpecs = (objs: Obj[]) =>
  [...byKind(objs, 'Deployment'), ...byKind(objs, 'Job')].map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, pod: o.spec.template.spec }));
const serviceOf = (d: Obj) => d.metadata.name.replace(/^fitlamp-/, '') as ServiceName;

/** The environment a container sees: literal values, ConfigMap keys, and sample values for Secret keys. */
function containerEnv(objs: Obj[], container: any, omitSecretKey?: string): Record<string, string> {
  const env: Record<string, string> = {};
  const configMap = (name: string) => {
    const cm = find(objs, 'ConfigMap', name);
    if (!cm) throw new Error(`ConfigMap ${name} is referenced but not rendered`);
    return cm.data ?? {};
  };
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, configMap(from.configMapRef.name));
    if (from.secretRef) throw new Error('envFrom secretRef hides which keys a service needs: use secretKeyRef');
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = configMap(e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key]!;
    else if (e.valueFrom?.secretKeyRef && e.valueFrom.secretKeyRef.key !== omitSecretKey) {
      const sample = secretSamples[e.valueFrom.secretKeyRef.key];
      if (sample === undefined) throw new Error(`no sample value for Secret key ${e.valueFrom.secretKeyRef.key}`);
      env[e.name] = sample;
    }
  }
  return env;
}

function selects(selector: any, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const { key, operator, values } of selector?.matchExpressions ?? []) {
    const has = key in labels;
    if (operator === 'In' && !(has && values.includes(labels[key]))) return false;
    if (operator === 'NotIn' && has && values.includes(labels[key])) return false;
    if (operator === 'Exists' && !has) return false;
    if (operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

// ── Invariants: each returns a list of problems ──────────────────────────────────────────────

/** Probes, resources, non-root and a read-only root filesystem on every container. */
function checkContainers(objs: Obj[]): string[] {
  const problems: string[] = [];
  for (const { owner, pod } of podSpecs(objs)) {
    const podSc = pod.securityContext ?? {};
    const all = [...(pod.initContainers ?? []).map((c: any) => ({ c, init: true })), ...pod.containers.map((c: any) => ({ c, init: false }))];
    for (const { c, init } of all) {
      const where = `${owner} ${c.name}`;
      const sc = { ...podSc, ...c.securityContext };
      if (sc.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
      if (!(sc.runAsUser > 0)) problems.push(`${where}: no non-zero runAsUser`);
      if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem is writable`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
      if (!c.securityContext?.capabilities?.drop?.includes('ALL')) problems.push(`${where}: capabilities not dropped`);
      for (const kind of ['requests', 'limits'] as const) {
        for (const r of ['cpu', 'memory']) if (!c.resources?.[kind]?.[r]) problems.push(`${where}: no ${r} ${kind.slice(0, -1)}`);
      }
      // Probes belong to long-running containers: the API rejects them on init containers, and a
      // Job's container runs to completion.
      if (!init && owner.startsWith('Deployment/') && (!c.livenessProbe || !c.readinessProbe)) {
        problems.push(`${where}: liveness and readiness probes required`);
      }
      if (c.image?.includes('fitlamp/')) {
        // The root filesystem is read-only: /tmp (os.tmpdir()) is the one writable place.
        const tmp = c.volumeMounts?.find((m: any) => m.mountPath === '/tmp');
        const vol = tmp && pod.volumes?.find((v: any) => v.name === tmp.name);
        if (!vol?.emptyDir) problems.push(`${where}: no writable emptyDir at /tmp`);
        if (sc.runAsUser !== 1000) problems.push(`${where}: runAsUser is not the image's node user (1000)`);
      }
    }
  }
  return problems;
}

/**
 * fitlamp's own containers: /healthz and /readyz on the ops port: OPS_PORT (the gateway, whose PORT
 * serves the public pages) or PORT (a worker's only server). Prometheus scrapes that port.
 */
function checkServiceProbes(objs: Obj[]): string[] {
  const problems: string[] = [];
  for (const d of fitlampDeployments(objs)) {
    const c = d.spec.template.spec.containers[0];
    const env = containerEnv(objs, c);
    const opsPort = env.OPS_PORT ?? env.PORT;
    const port = c.ports?.find((p: any) => String(p.containerPort) === opsPort);
    if (!port) problems.push(`${d.metadata.name}: no container port equal to the ops port ${opsPort}`);
    const probe = (p: any, path: string, what: string) => {
      if (p?.httpGet?.path !== path) problems.push(`${d.metadata.name}: ${what} does not GET ${path}`);
      else if (p.httpGet.port !== port?.name && p.httpGet.port !== port?.containerPort) problems.push(`${d.metadata.name}: ${what} is not on the ops port`);
    };
    const scrape = d.spec.template.metadata?.annotations?.['prometheus.io/port'];
    if (scrape !== opsPort) problems.push(`${d.metadata.name}: Prometheus scrapes port ${scrape}, not the ops port ${opsPort}`);
    probe(c.livenessProbe, '/healthz', 'livenessProbe');
    probe(c.readinessProbe, '/readyz', 'readinessProbe');
    if (c.startupProbe) probe(c.startupProbe, '/healthz', 'startupProbe');
  }
  return problems;
}

/** The grace period outlasts preStop plus the service's shutdown deadline, which outlasts a request's timeout. */
function checkGracePeriods(objs: Obj[]): string[] {
  const problems: string[] = [];
  for (const d of fitlampDeployments(objs)) {
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    const env = containerEnv(objs, c);
    const shutdownMs = Number(env.SHUTDOWN_TIMEOUT_MS ?? 25_000);
    const preStopS = Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0);
    const grace = Number(pod.terminationGracePeriodSeconds ?? 30);
    if (!(grace > preStopS + shutdownMs / 1000)) {
      problems.push(`${d.metadata.name}: terminationGracePeriodSeconds ${grace} <= preStop ${preStopS} s + SHUTDOWN_TIMEOUT_MS ${shutdownMs} ms`);
    }
    // Providers' and mindLAMP's requests time out after 30 s (LAMP_TIMEOUT_MS for the writer).
    const requestMs = Math.max(30_000, Number(env.LAMP_TIMEOUT_MS ?? 0));
    if (!(shutdownMs > requestMs)) problems.push(`${d.metadata.name}: SHUTDOWN_TIMEOUT_MS ${shutdownMs} does not outlast a ${requestMs} ms request`);
  }
  return problems;
}

/** Images are the Dockerfile's targets, one tag for all; init containers and the Job run `migrate`. */
function checkImages(objs: Obj[], targets: Set<string>): string[] {
  const problems: string[] = [];
  const tags = new Set<string>();
  const target = (image: string, where: string) => {
    const m = /(?:^|\/)fitlamp\/([a-z-]+)(?::([\w.-]+))?$/.exec(image);
    if (!m || !targets.has(m[1]!)) {
      problems.push(`${where}: image ${image} is not one the Dockerfile builds`);
      return undefined;
    }
    tags.add(m[2] ?? 'latest');
    return m[1];
  };
  for (const d of fitlampDeployments(objs)) {
    const pod = d.spec.template.spec;
    if (target(pod.containers[0].image, d.metadata.name) !== serviceOf(d)) problems.push(`${d.metadata.name}: runs image ${pod.containers[0].image}`);
    for (const c of pod.initContainers ?? []) if (target(c.image, `${d.metadata.name} ${c.name}`) !== 'migrate') problems.push(`${d.metadata.name} ${c.name}: not the migrate image`);
  }
  for (const j of byKind(objs, 'Job')) {
    if (target(j.spec.template.spec.containers[0].image, j.metadata.name) !== 'migrate') problems.push(`${j.metadata.name}: not the migrate image`);
  }
  for (const d of byKind(objs, 'Deployment').filter((x) => !fitlampDeployments(objs).includes(x))) {
    for (const c of d.spec.template.spec.containers) if (c.image.includes('fitlamp/')) target(c.image, d.metadata.name);
  }
  if (tags.size !== 1) problems.push(`fitlamp images carry different tags: ${[...tags].join(', ')}`);
  return problems;
}

/** The migration Job runs before work: every Deployment waits for the schema; the Job's template stays stable. */
function checkMigrationOrder(objs: Obj[]): string[] {
  const problems: string[] = [];
  const job = find(objs, 'Job', 'fitlamp-migrate');
  if (!job) return ['no fitlamp-migrate Job'];
  const jobPod = job.spec.template.spec;
  // The migrate target's CMD is the migration: the Job must not replace it.
  if (jobPod.containers[0].command || jobPod.containers[0].args) problems.push('fitlamp-migrate overrides the migrate image command');
  // Generated ConfigMaps get a new name per change; a Job's template is immutable.
  const generated = new Set(byKind(objs, 'ConfigMap').map((c) => c.metadata.name).filter((n) => /-[a-z0-9]{10}$/.test(n)));
  if (JSON.stringify(jobPod).match(/"name":"([^"]+)"/g)?.some((m) => generated.has(m.slice(8, -1)))) {
    problems.push('fitlamp-migrate references a generated ConfigMap: every setting change would make the Job unappliable');
  }
  for (const d of fitlampDeployments(objs)) {
    const pod = d.spec.template.spec;
    const wait = pod.initContainers?.find((c: any) => c.command?.join(' ').endsWith('/opt/fitlamp/wait-for-schema.mjs'));
    if (!wait) {
      problems.push(`${d.metadata.name}: starts without waiting for the schema`);
      continue;
    }
    // The migrate image is built JavaScript and a production install: node, no tsx.
    if (wait.command[0] !== 'node' || wait.command.some((arg: string) => /tsx/.test(arg))) {
      problems.push(`${d.metadata.name}: wait-for-schema is not run by plain node (${wait.command.join(' ')})`);
    }
    const mount = wait.volumeMounts?.find((m: any) => m.mountPath === '/opt/fitlamp');
    const vol = pod.volumes?.find((v: any) => v.name === mount?.name);
    const cm = vol?.configMap && find(objs, 'ConfigMap', vol.configMap.name);
    if (!cm?.data?.['wait-for-schema.mjs']) problems.push(`${d.metadata.name}: wait-for-schema script not mounted`);
    if (!containerEnv(objs, wait).DATABASE_URL) problems.push(`${d.metadata.name}: wait-for-schema has no DATABASE_URL`);
  }
  return problems;
}

/** Autoscalers target Deployments that exist, one autoscaler each, and those Deployments leave replicas to them. */
function checkAutoscaling(objs: Obj[]): string[] {
  const problems: string[] = [];
  const targets = new Map<string, string[]>();
  for (const a of [...byKind(objs, 'HorizontalPodAutoscaler'), ...byKind(objs, 'ScaledObject')]) {
    const ref = a.spec.scaleTargetRef;
    const d = (ref.kind ?? 'Deployment') === 'Deployment' ? find(objs, 'Deployment', ref.name) : undefined;
    if (!d) problems.push(`${a.kind}/${a.metadata.name}: targets ${ref.kind ?? 'Deployment'}/${ref.name}, which is not rendered`);
    else if (d.spec.replicas !== undefined) problems.push(`${ref.name}: sets replicas, which every apply would reset under ${a.kind}/${a.metadata.name}`);
    targets.set(ref.name, [...(targets.get(ref.name) ?? []), `${a.kind}/${a.metadata.name}`]);
  }
  for (const [name, by] of targets) if (by.length > 1) problems.push(`${name}: scaled by ${by.join(' and ')}`);
  const workerQueue: Record<string, string> = { 'fitlamp-fetcher': queueCatalog.sync.name, 'fitlamp-lamp-writer': queueCatalog.deliver.name };
  for (const so of byKind(objs, 'ScaledObject')) {
    const queue = workerQueue[so.spec.scaleTargetRef.name];
    const queries: string[] = so.spec.triggers.map((t: any) => (t.type === 'prometheus' ? t.metadata.query : ''));
    const namespace = so.metadata.namespace;
    for (const q of queries) {
      if (!q.includes('fitlamp_queue_jobs') || !q.includes(`queue="${queue}"`)) problems.push(`${so.metadata.name}: trigger does not read its queue ${queue}: ${q}`);
      if (namespace && !q.includes(`namespace="${namespace}"`)) problems.push(`${so.metadata.name}: query does not select namespace ${namespace}`);
      // Every pod exports the same counts: summing across pods would multiply them.
      if (!/max by \(shard, state\)/.test(q)) problems.push(`${so.metadata.name}: query does not take the max across pods`);
    }
    // An empty answer must not read as "no work" (and scale the workers to zero): fall back instead.
    for (const t of so.spec.triggers) {
      if (t.type === 'prometheus' && t.metadata.ignoreNullValues !== 'false') problems.push(`${so.metadata.name}: trigger ${t.name} reads an empty answer as zero`);
    }
    if (!(so.spec.fallback?.replicas > 0)) problems.push(`${so.metadata.name}: no fallback replicas`);
    // From zero, only a worker moves due delayed jobs to waiting: some trigger must see them.
    if (so.spec.minReplicaCount === 0 && !queries.some((q) => q.includes('delayed'))) {
      problems.push(`${so.metadata.name}: scales to zero but no trigger counts delayed jobs, which would then wait forever`);
    }
  }
  return problems;
}

/** Default deny; only the gateway takes traffic from anywhere; workers reach what they need and nothing else. */
function checkNetworkPolicies(objs: Obj[]): string[] {
  const problems: string[] = [];
  const policies = byKind(objs, 'NetworkPolicy');
  const deny = policies.find((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && !p.spec.ingress && !p.spec.egress);
  if (!deny || !['Ingress', 'Egress'].every((t) => deny.spec.policyTypes?.includes(t))) problems.push('no default-deny policy for ingress and egress');
  for (const d of byKind(objs, 'Deployment')) {
    const labels = d.spec.template.metadata.labels ?? {};
    const applying = policies.filter((p) => selects(p.spec.podSelector, labels));
    const openIngress = applying.some((p) => (p.spec.ingress ?? []).some((r: any) => !r.from || r.from.length === 0));
    const isGateway = d.metadata.name === 'fitlamp-gateway';
    if (openIngress !== isGateway) problems.push(`${d.metadata.name}: ${openIngress ? 'takes' : 'does not take'} ingress from anywhere`);
    if (labels['app.kubernetes.io/name'] !== 'fitlamp') continue;
    const egressPorts = new Set(applying.flatMap((p) => (p.spec.egress ?? []).flatMap((r: any) => (r.ports ?? []).map((x: any) => x.port))));
    const needs = [53, 5432, 6379, ...(['gateway', 'fetcher', 'lamp-writer'].includes(serviceOf(d)) ? [443] : [])];
    for (const port of needs) if (!egressPorts.has(port)) problems.push(`${d.metadata.name}: cannot reach port ${port}`);
    if (serviceOf(d) === 'scheduler' && egressPorts.has(443)) problems.push('fitlamp-scheduler: may reach the internet, which it never needs');
  }
  return problems;
}

/** Every fitlamp Deployment has a PodDisruptionBudget. */
function checkDisruptionBudgets(objs: Obj[]): string[] {
  return fitlampDeployments(objs)
    .filter((d) => !byKind(objs, 'PodDisruptionBudget').some((p) => selects(p.spec.selector, d.spec.template.metadata.labels)))
    .map((d) => `${d.metadata.name}: no PodDisruptionBudget`);
}

function exampleKeys(overlay: string): Set<string> {
  const dir = join(k8s, 'overlays', overlay);
  const file = ['secrets.env.example', '../production/secrets.env.example'].map((f) => join(dir, f)).find((f) => statSync(f, { throwIfNoEntry: false }));
  return new Set(readFileSync(file!, 'utf8').split('\n').map((l) => /^([A-Z0-9_]+)=/.exec(l)?.[1]).filter((k): k is string => !!k));
}

const dockerTargets = new Set(
  [...readFileSync(join(root, 'Dockerfile'), 'utf8').matchAll(/^FROM runtime AS ([a-z-]+)$/gm)].map((m) => m[1]!),
);

/** Everything lands in one namespace (an object without one would go to the default namespace). */
function checkNamespace(objs: Obj[]): string[] {
  const namespaced = objs.filter((o) => o.kind !== 'Namespace');
  const names = new Set(namespaced.map((o) => o.metadata.namespace));
  const declared = byKind(objs, 'Namespace').map((n) => n.metadata.name);
  if (names.size !== 1 || !declared.includes([...names][0] ?? '')) {
    return namespaced.filter((o) => o.metadata.namespace !== declared[0]).map((o) => `${o.kind}/${o.metadata.name}: namespace ${o.metadata.namespace ?? '(none)'}, not ${declared[0]}`);
  }
  return [];
}

function allProblems(objs: Obj[]): string[] {
  return [
    ...checkNamespace(objs),
    ...checkContainers(objs),
    ...checkServiceProbes(objs),
    ...checkGracePeriods(objs),
    ...checkImages(objs, dockerTargets),
    ...checkMigrationOrder(objs),
    ...checkAutoscaling(objs),
    ...checkNetworkPolicies(objs),
    ...checkDisruptionBudgets(objs),
  ];
}

// ── Tests ─────────────────────────────────────────────────────────────────────────────────────

describe('deploy/kubernetes', () => {
  it('has the overlays the guide names', () => {
    expect(overlays).toEqual(['local', 'production', 'production-keda']);
  });

  describe.each(overlays)('overlay %s', (overlay) => {
    const objs = renders[overlay]!;

    it('renders only objects that are valid against the Kubernetes and KEDA schemas', () => {
      expect(objs.length).toBeGreaterThan(15);
      expect(objs.map(schemaErrors).filter(Boolean)).toEqual([]);
      // Credentials are referenced, never rendered: no Secret object, no value in git.
      expect(byKind(objs, 'Secret')).toEqual([]);
    });

    it('keeps every invariant: probes, resources, non-root, grace, images, migration order, autoscaling, policies, budgets', () => {
      expect(allProblems(objs)).toEqual([]);
      expect(fitlampDeployments(objs).map(serviceOf).sort()).toEqual([...SERVICES].sort());
    });

    it.each(SERVICES)('gives %s every variable it requires, in a form it accepts', (service) => {
      const d = find(objs, 'Deployment', `fitlamp-${service}`)!;
      const env = containerEnv(objs, d.spec.template.spec.containers[0]);
      expect(() => loaders[service].load(env)).not.toThrow();
      // The same check fails when a required credential is not referenced.
      const secretRefs = d.spec.template.spec.containers[0].env.filter((e: any) => e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional);
      expect(secretRefs.length).toBeGreaterThan(0);
      for (const ref of secretRefs) {
        expect(() => loaders[service].load(containerEnv(objs, d.spec.template.spec.containers[0], ref.valueFrom.secretKeyRef.key))).toThrow(ref.name);
      }
    });

    it('documents every Secret key it references in secrets.env.example, and sets only known variables', () => {
      const documented = exampleKeys(overlay);
      const referenced = new Set(
        podSpecs(objs).flatMap(({ pod }) =>
          [...(pod.initContainers ?? []), ...pod.containers].flatMap((c: any) =>
            (c.env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef).map((e: any) => e.valueFrom.secretKeyRef.key as string),
          ),
        ),
      );
      expect([...referenced].filter((k) => !documented.has(k))).toEqual([]);
      expect([...documented].filter((k) => !referenced.has(k))).toEqual([]);
      const config = byKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('fitlamp-config-'))!;
      expect(Object.keys(config.data!).filter((k) => !knownVariables.has(k))).toEqual([]);
    });

    it('serves the gateway over TLS at PUBLIC_BASE_URL, and nothing else through an Ingress', () => {
      const ingresses = byKind(objs, 'Ingress');
      const config = byKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('fitlamp-config-'))!;
      const publicUrl = new URL(config.data!.PUBLIC_BASE_URL!);
      if (overlay === 'local') {
        expect(ingresses).toEqual([]);
        expect(publicUrl.hostname).toBe('localhost');
        return;
      }
      expect(ingresses).toHaveLength(1);
      const [ingress] = ingresses as [Obj];
      expect(publicUrl.protocol).toBe('https:');
      expect(config.data!.NODE_ENV).toBe('production');
      for (const rule of ingress.spec.rules) {
        expect(rule.host).toBe(publicUrl.hostname);
        expect(ingress.spec.tls.some((t: any) => t.hosts.includes(rule.host) && t.secretName)).toBe(true);
        for (const path of rule.http.paths) expect(path.backend.service.name).toBe('fitlamp-gateway');
      }
      expect(byKind(objs, 'Service').map((s) => s.metadata.name)).toEqual(['fitlamp-gateway']);
      // The Service behind the Ingress exposes the pages' port only, never the ops port (/readyz, /metrics).
      const [service] = byKind(objs, 'Service') as [Obj];
      expect(service.spec.ports.map((p: any) => p.targetPort)).toEqual(['http']);
    });
  });

  it('runs Postgres and Redis only in the local overlay, Redis durable and never evicting', () => {
    for (const overlay of ['production', 'production-keda']) {
      const images = byKind(renders[overlay]!, 'Deployment').flatMap((d) => d.spec.template.spec.containers.map((c: any) => c.image as string));
      expect(images.filter((i) => /postgres|redis/.test(i))).toEqual([]);
    }
    const redis = find(renders.local!, 'Deployment', 'fitlamp-redis')!.spec.template.spec.containers[0];
    expect(redis.command.join(' ')).toMatch(/--appendonly yes .*--maxmemory-policy noeviction/);
  });

  it('autoscales the fetcher and the lamp-writer: CPU HPAs in production, queue-depth ScaledObjects in production-keda', () => {
    const targets = (overlay: string, kind: string) => byKind(renders[overlay]!, kind).map((a) => a.spec.scaleTargetRef.name).sort();
    expect(targets('production', 'HorizontalPodAutoscaler')).toEqual(['fitlamp-fetcher', 'fitlamp-lamp-writer']);
    expect(targets('production', 'ScaledObject')).toEqual([]);
    expect(targets('production-keda', 'ScaledObject')).toEqual(['fitlamp-fetcher', 'fitlamp-lamp-writer']);
    expect(targets('production-keda', 'HorizontalPodAutoscaler')).toEqual([]);
  });

  it('keeps requests and limits in one file (base/resources.yaml)', () => {
    const files = readdirSync(join(k8s, 'base')).filter((f) => f.endsWith('.yaml') && f !== 'resources.yaml');
    expect(files.filter((f) => /^\s*resources:\s*\{?\s*(requests|limits)/m.test(readFileSync(join(k8s, 'base', f), 'utf8')))).toEqual([]);
  });

  describe('the checks can fail', () => {
    const production = () => structuredClone(renders.production!);
    const deployment = (objs: Obj[], name: string) => find(objs, 'Deployment', name)!;

    it('rejects an object that breaks the schema', () => {
      const objs = production();
      deployment(objs, 'fitlamp-fetcher').spec.template.spec.containers[0].ports[0].containerPort = 'nine thousand';
      expect(objs.map(schemaErrors).filter(Boolean).join('\n')).toMatch(/fitlamp-fetcher.*containerPort must be integer/);
      const so = structuredClone(find(renders['production-keda']!, 'ScaledObject', 'fitlamp-fetcher')!);
      delete so.spec.scaleTargetRef;
      expect(schemaErrors(so)).toMatch(/scaleTargetRef/);
      expect(schemaErrors({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })).toMatch(/no schema/);
    });

    it('finds a writable root filesystem, a missing probe, a short grace period and a stray image', () => {
      const objs = production();
      const fetcher = deployment(objs, 'fitlamp-fetcher').spec.template.spec;
      fetcher.containers[0].securityContext.readOnlyRootFilesystem = false;
      delete fetcher.containers[0].readinessProbe;
      fetcher.terminationGracePeriodSeconds = 30;
      deployment(objs, 'fitlamp-scheduler').spec.template.spec.containers[0].image = 'registry.example.org/fitlamp/sheduler:0.1.0';
      const problems = allProblems(objs).join('\n');
      expect(problems).toMatch(/fitlamp-fetcher fetcher: root filesystem is writable/);
      expect(problems).toMatch(/fitlamp-fetcher fetcher: liveness and readiness probes required/);
      expect(problems).toMatch(/fitlamp-fetcher: terminationGracePeriodSeconds 30/);
      expect(problems).toMatch(/fitlamp\/sheduler:0.1.0 is not one the Dockerfile builds/);
    });

    it('finds a Deployment that does not wait for the migration, an autoscaler without a target or outside the namespace', () => {
      const objs = production();
      deployment(objs, 'fitlamp-lamp-writer').spec.template.spec.initContainers = [];
      deployment(objs, 'fitlamp-fetcher').spec.template.spec.initContainers[0].command = ['node', '--import', 'tsx', '/opt/fitlamp/wait-for-schema.mjs'];
      find(objs, 'HorizontalPodAutoscaler', 'fitlamp-fetcher')!.spec.scaleTargetRef.name = 'fitlamp-fetchers';
      delete find(objs, 'HorizontalPodAutoscaler', 'fitlamp-lamp-writer')!.metadata.namespace;
      const problems = allProblems(objs).join('\n');
      expect(problems).toMatch(/fitlamp-lamp-writer: starts without waiting for the schema/);
      expect(problems).toMatch(/fitlamp-fetcher: wait-for-schema is not run by plain node \(node --import tsx/);
      expect(problems).toMatch(/targets Deployment\/fitlamp-fetchers, which is not rendered/);
      expect(problems).toMatch(/HorizontalPodAutoscaler\/fitlamp-lamp-writer: namespace \(none\), not fitlamp/);
    });

    it('finds a worker open to ingress and a ScaledObject that would strand delayed jobs at zero', () => {
      const objs = structuredClone(renders['production-keda']!);
      find(objs, 'NetworkPolicy', 'fitlamp-gateway-ingress')!.spec.podSelector = { matchLabels: { 'app.kubernetes.io/name': 'fitlamp' } };
      const so = find(objs, 'ScaledObject', 'fitlamp-lamp-writer')!;
      so.spec.triggers = so.spec.triggers.filter((t: any) => t.name !== 'any-work');
      find(objs, 'ScaledObject', 'fitlamp-fetcher')!.spec.triggers[0].metadata.ignoreNullValues = 'true';
      const problems = allProblems(objs).join('\n');
      expect(problems).toMatch(/fitlamp-fetcher: takes ingress from anywhere/);
      expect(problems).toMatch(/fitlamp-lamp-writer: scales to zero but no trigger counts delayed jobs/);
      expect(problems).toMatch(/fitlamp-fetcher: trigger queue-depth reads an empty answer as zero/);
    });
  });

  describe('wait-for-schema (the init container)', () => {
    let database: TestDatabase | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'fitlamp-wait-'));
    // The migrate image's /app: the built dist/migrations.js and pg (packages/db is what it deploys).
    const image = { FITLAMP_ROOT: join(root, 'packages/db') };
    beforeAll(() => {
      buildIfStale(['migrate']);
    }, 60_000);
    afterAll(async () => {
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('holds a service back until the migration Job has run, then lets it start', async () => {
      database = await createTestDatabase({ migrated: false });
      // As mounted from the ConfigMap: a lone file, no package.json around it, run from the image's WORKDIR.
      const script = join(dir, 'wait-for-schema.mjs');
      copyFileSync(join(k8s, 'base/wait-for-schema.mjs'), script);
      const env = { ...image, DATABASE_URL: database.url, WAIT_FOR_SCHEMA_INTERVAL_SECONDS: '0.2' };

      const once = startProcess(script, env, ['--once']);
      expect(await once.exited).toBe(1);
      const names = Object.keys(migrations).sort();
      expect(once.stderr.join('\n')).toContain(`${names.length} migration(s) pending: ${names.join(', ')}`);

      const waiting = startProcess(script, env);
      await waiting.waitForLine(/waiting for the fitlamp-migrate Job/);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(waiting.proc.exitCode).toBeNull();
      await migrateToLatest(database.db);
      expect(await waiting.exited).toBe(0);
      expect(waiting.stdout.join('\n')).toContain(`schema is at ${names.at(-1)}`);
    });

    it('fails with one line when it cannot reach Postgres or has no DATABASE_URL', async () => {
      const script = join(dir, 'wait-for-schema.mjs');
      copyFileSync(join(k8s, 'base/wait-for-schema.mjs'), script);
      const down = startProcess(script, { ...image, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }, ['--once']);
      expect(await down.exited).toBe(1);
      expect(down.stderr.join('\n')).toMatch(/cannot read the schema version yet: .*ECONNREFUSED/);
      const unset = startProcess(script, image);
      expect(await unset.exited).toBe(1);
      expect(unset.stderr).toEqual(['wait-for-schema: configuration error: DATABASE_URL is required but not set']);
    });
  });
});
