// Summarizes V8 `.cpuprofile` files: self time per function and per module, as shares of the
// time the process was busy (idle excluded), so the report names a bottleneck from evidence.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  /** Wall time covered by the profile, s. */
  seconds: number;
  /** Share of the profile the process was busy (not idle). */
  busy: number;
  /** Top functions by self time: share of busy time. */
  functions: Array<{ name: string; share: number }>;
  /** Self time grouped by module (package or source file area). */
  modules: Array<{ name: string; share: number }>;
}

export function findProfiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.cpuprofile')) out.push(p);
    }
  };
  try {
    walk(dir);
  } catch {
    return [];
  }
  return out.sort();
}

function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url) ?? /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = /\/((?:packages|services)\/[^/]+)\//.exec(url);
  if (src) return src[1]!;
  return url.split('/').slice(-2).join('/');
}

/**
 * A built service (`dist/main.js`, one file for all workspace packages) is profiled at bundle
 * positions: its source map (`main.js.map`, written by scripts/build.mjs) turns each back into the
 * TypeScript file and line, so modules are named as when running from source.
 */
function createSourceMapper(): (frame: ProfileNode['callFrame']) => { url: string; lineNumber: number } {
  const maps = new Map<string, { map: SourceMap; dir: string } | null>();
  return (frame) => {
    if (!frame.url.startsWith('file://') || !/\/dist\/[^/]+\.js$/.test(frame.url)) return frame;
    const file = fileURLToPath(frame.url);
    if (!maps.has(file)) {
      maps.set(file, existsSync(`${file}.map`) ? { map: new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))), dir: dirname(file) } : null);
    }
    const m = maps.get(file);
    const entry = m?.map.findEntry(frame.lineNumber, frame.columnNumber ?? 0) as { originalSource?: string; originalLine?: number } | undefined;
    if (!m || !entry?.originalSource) return frame;
    const source = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : resolve(m.dir, entry.originalSource);
    return { url: `file://${source}`, lineNumber: entry.originalLine ?? frame.lineNumber };
  };
}

export function summarizeProfile(file: string, root: string, top = 12): ProfileSummary {
  const original = createSourceMapper();
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i]!;
      self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0));
    }
  } else {
    for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  let total = 0;
  let idle = 0;
  const fns = new Map<string, number>();
  const mods = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName } = node.callFrame;
    const { url, lineNumber } = original(node.callFrame);
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = url ? `${relative(root, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
    const name = `${functionName || '(anonymous)'}${where ? ` ${where.replace(/^.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, '')}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    const mod = moduleOf(url, functionName);
    mods.set(mod, (mods.get(mod) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, share: busy > 0 ? us / busy : 0 }));
  return {
    file: relative(root, file),
    seconds: (profile.endTime - profile.startTime) / 1e6,
    busy: total > 0 ? busy / total : 0,
    functions: rank(fns),
    modules: rank(mods),
  };
}
