import { spawn, type ChildProcess } from 'node:child_process';
import { Buffer } from 'node:buffer';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runCli(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** Resolves with a simulator's URL once the CLI prints it; rejects if the CLI exits first. */
function urlOf(run: Run, title: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = new RegExp(`${title} simulator: (http://\\S+)`).exec(run.output());
      if (match) resolve(match[1]!);
    };
    check();
    run.child.stdout!.on('data', check);
    void run.exited.then(() => reject(new Error(`the CLI exited before printing its URL:\n${run.output()}`)));
  });
}

describe('pnpm sim', () => {
  it('starts the simulators, they answer, and it exits cleanly on SIGTERM', async () => {
    const run = runCli(['--lamp-port', '0', '--fitbit-port', '0', '--google-port', '0', '--lamp-participants', 'U5000000001:S5', '--seed', 'cli-test']);
    const url = await urlOf(run, 'mindLAMP');
    const fitbitUrl = await urlOf(run, 'Fitbit Web API');
    expect((await fetch(`${fitbitUrl}/_control/clock`)).status).toBe(200);

    const auth = `Basic ${Buffer.from('researcher@fitlamp.test:fitlamp-sim-secret').toString('base64')}`;
    const participant = await fetch(`${url}/participant/U5000000001`, { headers: { authorization: auth } });
    expect(await participant.json()).toEqual({ data: [{ id: 'U5000000001' }] });
    const counts = await fetch(`${url}/_control/counts`);
    expect(await counts.json()).toEqual({ data: { total: 0, participants: {} } });

    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    await expect(fetch(`${url}/_control/counts`)).rejects.toThrow();
    await expect(fetch(`${fitbitUrl}/_control/clock`)).rejects.toThrow();
  });

  it('takes configuration from SIM_* environment variables and stops on SIGINT', async () => {
    const run = runCli(['--only', 'lamp'], {
      SIM_LAMP_PORT: '0',
      SIM_LAMP_ACCESS_KEY: 'env@study.test',
      SIM_LAMP_SECRET_KEY: 'from-the-env',
      SIM_LAMP_PARTICIPANTS: 'U6000000001:S6',
    });
    const url = await urlOf(run, 'mindLAMP');
    const auth = `Basic ${Buffer.from('env@study.test:from-the-env').toString('base64')}`;
    expect((await fetch(`${url}/participant/U6000000001`, { headers: { authorization: auth } })).status).toBe(200);
    expect(run.output()).toContain(`LAMP_API_URL=${url} LAMP_ACCESS_KEY=env@study.test`);
    expect(run.output()).not.toContain('Fitbit Web API simulator:');

    run.child.kill('SIGINT');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('prints the flags with --help and rejects an unknown flag', async () => {
    const help = runCli(['--help']);
    expect(await help.exited).toEqual({ code: 0, signal: null });
    expect(help.output()).toContain('--lamp-port');
    expect(help.output()).toContain('SIM_LAMP_PORT');

    const bad = runCli(['--lamp-prot', '1']);
    expect((await bad.exited).code).toBe(2);
    expect(bad.output()).toContain("Unknown option '--lamp-prot'");
  });
});
