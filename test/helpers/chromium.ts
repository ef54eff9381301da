/** Headless Debian Chromium for page tests: a screenshot and the rendered DOM of a local file. */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tmpDir } from './tmp.ts';

const run = promisify(execFile);

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--hide-scrollbars',
];

export interface Rendered {
  dom: string;
  screenshot: string;
  /** Lines Chromium logged for the page's console (errors included) and failed loads. */
  consoleLines: string[];
}

export async function renderPage(file: string, size = '1200,1800'): Promise<Rendered> {
  const profile = tmpDir('lbvm-chromium-');
  const screenshot = path.join(profile, 'screenshot.png');
  const url = `file://${file}`;
  const common = [...FLAGS, `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0', `--window-size=${size}`];
  const dumped = await run('chromium', [...common, '--dump-dom', url], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  const shot = await run('chromium', [...common, `--screenshot=${screenshot}`, url], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  if (!fs.existsSync(screenshot)) throw new Error(`chromium wrote no screenshot: ${shot.stderr.slice(-2000)}`);
  const consoleLines = `${dumped.stderr}\n${shot.stderr}`
    .split('\n')
    .filter((line) => /CONSOLE|Uncaught|Failed to load resource|net::ERR_/.test(line));
  return { dom: dumped.stdout, screenshot, consoleLines };
}
