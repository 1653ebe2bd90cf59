/**
 * The web console of `ice serve`, in a real browser: Debian's chromium, headless, driven by
 * puppeteer-core (.ci/run installs it). Sign in with the token, open a run with a denial and find it on
 * the timeline, watch a new run appear live, and check that a guest string carrying markup is shown as
 * text and never runs. The run page's screenshot is written to build/console-run.png (README's picture).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';
import { ROOT } from './paths.js';
import { api, serve, stopAll, writeConfig, type Served } from './serve-harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH`);
  // --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}, 60_000);
afterAll(async () => browser?.close());
afterEach(stopAll);

async function signedIn(s: Served): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 800 });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().includes('401')) problems.push(message.text());
  });
  await page.goto(`${s.url}/`);
  await page.waitForSelector('#login input[name=token]');
  await page.type('#login input[name=token]', s.token);
  await page.click('#login button');
  await page.waitForSelector('#agents tr[data-agent="notes"]');
  (page as Page & { problems: string[] }).problems = problems;
  return page;
}

describe('the ice serve console, in chromium', () => {
  it('signs in with the token; a wrong token is refused and asked again', async () => {
    const s = await serve(writeConfig(tempDir()));
    const page = await browser.newPage();
    await page.goto(`${s.url}/`);
    await page.waitForSelector('#login input[name=token]');
    await page.type('#login input[name=token]', 'not-the-token-at-all-not-the-token-at-all');
    await page.click('#login button');
    await page.waitForFunction(() => document.querySelector('#login')?.textContent?.includes('The token was refused.'));
    await page.close();
    const signed = await signedIn(s);
    const states = await signed.$$eval('#agents tr[data-agent]', (rows) => rows.map((r) => `${r.getAttribute('data-agent')}:${r.querySelectorAll('td')[1]!.textContent}`));
    expect(states).toEqual(['emitter:active', 'notes:active', 'trapper:active']);
    expect((signed as Page & { problems: string[] }).problems).toEqual([]);
  });

  it('shows a run with a denial on its timeline, its input and output as text, and a new run live', async () => {
    const s = await serve(writeConfig(tempDir()));
    // A kind the emitter may not emit: denied, recorded, and the run carries on.
    const denied = await api(s, 'POST', '/v1/agents/emitter/invoke', { input: 'secret.leak x\nnotes.added fine' });
    expect(denied.json.run.output).toMatch(/^denied secret\.leak/);
    const markup = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    const hostile = await api(s, 'POST', '/v1/agents/notes/invoke', { input: markup });
    expect(hostile.json.run.output).toBe(`hello, ${markup}!`);

    const page = await signedIn(s);
    await page.goto(`${s.url}/#/run/${denied.json.run.runId}`);
    await page.waitForSelector('svg.timeline g.call');
    const bars = await page.$$eval('svg.timeline g.call', (gs) => gs.map((g) => `${g.getAttribute('data-seq')}:${g.getAttribute('data-decision')}`));
    expect(bars).toEqual(['1:deny', '2:allow']);
    const title = await page.$eval('svg.timeline g.call[data-decision="deny"] title', (t) => t.textContent);
    expect(title).toMatch(/^seq 1 events\.emit · deny \(grants\.events\.kinds\) · denied: events\.emit\("secret\.leak"\) denied/);
    expect(await page.$eval('#verify', (d) => d.textContent)).toBe('ok');
    mkdirSync(join(ROOT, 'build'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'build', 'console-run.png'), fullPage: true });

    // Guest text with markup is text: no element made from it, no script run.
    await page.goto(`${s.url}/#/run/${hostile.json.run.runId}`);
    await page.waitForFunction((id) => document.querySelector('#run-info dd')?.textContent === id, {}, hostile.json.run.runId);
    expect(await page.$eval('#run-input', (d) => d.textContent)).toBe(markup);
    expect(await page.$eval('#run-output', (d) => d.textContent)).toBe(`hello, ${markup}!`);
    expect(await page.$$eval('main img, main b', (found) => found.length)).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // Live: the runs list gains a run made after it was opened, without a reload.
    await page.goto(`${s.url}/#/runs`);
    await page.waitForSelector('#runs tr[data-run]');
    await page.waitForFunction(() => document.querySelector('#status')?.textContent?.startsWith('live'));
    const fresh = await api(s, 'POST', '/v1/agents/notes/invoke', { input: 'live one' });
    await page.waitForSelector(`#runs tr[data-run="${fresh.json.run.runId}"]`, { timeout: 15_000 });
    // Filtered to runs with denials: only the emitter's.
    await page.goto(`${s.url}/#/runs?denied=1`);
    await page.waitForFunction((id) => Array.from(document.querySelectorAll('#runs tr[data-run]'), (r) => r.getAttribute('data-run')).join() === id, { timeout: 10_000 }, denied.json.run.runId);
    expect((page as Page & { problems: string[] }).problems).toEqual([]);
  });

  it('serves the console under a CSP that allows no inline script and no other origin', async () => {
    const s = await serve(writeConfig(tempDir()));
    const response = await fetch(`${s.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${s.url}/v1/runs`)).status).toBe(401);
  });
});
