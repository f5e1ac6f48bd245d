import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Where the machine's Chromium lives; `CHROMIUM_PATH` overrides it. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for a quiet, sandbox-free headless Chromium that talks to nothing but the test's servers. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  /** A fresh page in the context. */
  newPage(): Promise<Page>;
  /** Closes Chromium and deletes its profile directory. */
  close(): Promise<void>;
}

/**
 * Headless Chromium with a fresh profile in a temporary directory, so no cookie or cache leaks
 * between tests. Close it in `afterAll`.
 */
export async function launchTestBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'fitlamp-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_ARGS,
      // A phone-sized screen: participants open their links on phones.
      viewport: options.viewport ?? { width: 390, height: 844 },
      timeout: 15_000,
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    context,
    newPage: () => context.newPage(),
    close() {
      closing ??= context.close().finally(() => rm(userDataDir, { recursive: true, force: true }));
      return closing;
    },
  };
}

/**
 * Collects the page's console errors (CSP refusals show up there) into `into`, except those
 * containing `expected` (a favicon's 404, the Basic challenge's 401), and gives it the tests'
 * default timeout.
 */
export function watchPage(page: Page, into: string[], expected: string): Page {
  page.setDefaultTimeout(8_000);
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().includes(expected)) into.push(message.text());
  });
  return page;
}
