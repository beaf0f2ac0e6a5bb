// Drives Airlock's web console in headless Chromium (Debian's chromium,
// driven by playwright-core): a researcher signs in through the OIDC
// provider, creates an upload request, uploads a file (the first PATCH is
// dropped on purpose, so the page must resume), confirms; two approvers sign
// in in turn and approve their stages; the request ends COMPLETED.
// Screenshots of each step go to SCREENSHOTS.
//
// Run by integration/browser_test.go, which starts the Temporal dev server,
// the worker, the API and the OIDC provider, and passes:
//   PLAYWRIGHT_CORE  path of the playwright-core package
//   CHROMIUM         the browser executable
//   CONSOLE_URL      the API's base URL
//   UPLOAD_FILES     the files to upload (path-list separated); one must be
//                    larger than the page's chunk size
//   SCREENSHOTS      folder for the screenshots
//   PROJECT, WORKSPACE
//   RESEARCHER, FIRST_APPROVER, SECOND_APPROVER  user names at the provider
// It prints one JSON line: {"id": "<request id>", "state": "..."}.
'use strict';
const path = require('path');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.CONSOLE_URL;
const shots = process.env.SCREENSHOTS;
const timeout = 60000;
let step = 0;

async function shot(page, name) {
  step++;
  const file = path.join(shots, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.error(`screenshot ${file}`);
}

async function signIn(page, user) {
  await page.goto(base + '/');
  await page.click('a#signin');
  await page.waitForSelector('#username', { timeout });
  await page.fill('#username', user);
  await page.click('button[type=submit]');
  await page.waitForSelector('form#signout', { timeout });
}

async function signOut(page) {
  await page.click('form#signout button');
  await page.waitForSelector('a#signin', { timeout });
}

async function waitForState(page, want) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = (await page.textContent('#state')).trim();
    if (got === want) return;
    if (Date.now() > deadline) throw new Error(`request stayed ${got}, want ${want}`);
    await page.waitForTimeout(500);
    await page.reload();
  }
}

async function approve(page, user, id, comment) {
  await signIn(page, user);
  await page.click('a#nav-queue');
  const row = page.locator(`tr[data-request-id="${id}"]`);
  await row.waitFor({ timeout });
  await shot(page, `${user}-queue`);
  await row.locator('a').first().click();
  await page.waitForSelector('table#files', { timeout });
  await page.fill('textarea#comment', comment);
  await shot(page, `${user}-review`);
  await page.click('button#approve');
  await page.waitForLoadState();
  const refusal = await page.locator('.refusal').count();
  if (refusal > 0) throw new Error(`${user}'s approval was refused: ${await page.textContent('.refusal')}`);
  await shot(page, `${user}-approved`);
  await signOut(page);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('console', (m) => console.error(`page: ${m.text()}`));

  // The researcher uploads.
  const researcher = process.env.RESEARCHER;
  await signIn(page, researcher);
  await shot(page, 'researcher-my-requests');
  await page.click('a#nav-upload');
  await page.fill('#project', process.env.PROJECT);
  await page.fill('#workspace', process.env.WORKSPACE);
  await page.fill('#display_name', 'Clinic survey 2026');
  await page.fill('#description', 'Survey answers collected at the clinic, pseudonymised.');
  await page.fill('#license', 'For project d4e6 only.');
  await page.fill('#publisher_organisation', 'Example Clinic');
  await page.fill('#publisher_contact_name', researcher);
  await page.fill('#publisher_contact_role', 'Researcher');
  await shot(page, 'researcher-new-upload');
  await page.click('button#create');
  await page.waitForSelector('input#file-input', { timeout });
  const id = (await page.textContent('#request-id')).trim();

  // Drop the connection of the first PATCH that continues a file part-way
  // (Upload-Offset > 0): the page must ask the server where it got to
  // (HEAD) and resume from there rather than start again.
  let dropped = null;
  let resumedAt = null;
  await page.route('**/api/v1/files/**', async (route) => {
    const req = route.request();
    if (req.method() === 'PATCH') {
      const offset = Number(req.headers()['upload-offset']);
      if (offset > 0 && dropped === null) {
        dropped = offset;
        await route.abort('connectionreset');
        return;
      }
      if (dropped !== null && resumedAt === null) resumedAt = offset;
    }
    await route.continue();
  });
  const files = process.env.UPLOAD_FILES.split(path.delimiter);
  await page.setInputFiles('input#file-input', files);
  await page.waitForFunction((n) => document.querySelectorAll('.upload-row[data-status="done"]').length === n, files.length, { timeout });
  if (dropped === null) throw new Error('no PATCH continued a file part-way, so resumption was not exercised: upload a file larger than the page\'s chunk size');
  if (resumedAt === null || resumedAt < dropped) throw new Error(`after the connection dropped at offset ${dropped} the page resumed at ${resumedAt}`);
  console.error(`dropped a PATCH at offset ${dropped}; the page resumed at ${resumedAt}`);
  await shot(page, 'researcher-uploaded');
  await page.click('button#confirm');
  await page.waitForSelector('#state', { timeout });
  await waitForState(page, 'AWAITING_APPROVAL');
  await shot(page, 'researcher-awaiting-approval');
  await signOut(page);

  // Two approvers, one stage each.
  await approve(page, process.env.FIRST_APPROVER, id, 'Files match the description; no direct identifiers.');
  await approve(page, process.env.SECOND_APPROVER, id, 'Lawful basis confirmed for project d4e6.');

  // The researcher sees it completed.
  await signIn(page, researcher);
  await page.goto(`${base}/requests/${id}`);
  await waitForState(page, 'COMPLETED');
  await shot(page, 'researcher-completed');
  await browser.close();
  console.log(JSON.stringify({ id, state: 'COMPLETED', dropped_at: dropped, resumed_at: resumedAt }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
