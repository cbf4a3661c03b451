// Debian's chromium (CHROMIUM_PATH, default /usr/bin/chromium) through
// playwright-core, headless, as every browser test launches it.

import { chromium } from 'playwright-core';
import { STARTUP_TIMEOUT_MS, withTimeout } from '../support/gateway.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function launchChromium() {
  return withTimeout(
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: STARTUP_TIMEOUT_MS,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    }),
    STARTUP_TIMEOUT_MS + 5_000,
    `launch ${CHROMIUM}`,
  );
}
