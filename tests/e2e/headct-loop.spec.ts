/**
 * The inspector's loop on a real data set (HeadCT, 200 CT slices, ids 000-099 hemorrhage):
 * import, label 10 hemorrhages and 20 normals, Retrain, review, decide the top 12 of the
 * unlabelled queue, Retrain again. After each retrain, on the images still unlabelled, the
 * automatic threshold must flag at most 10 % of the normals and at least 70 % of the
 * hemorrhages, and what the Review view shows for the queue must be what the test counts.
 *
 * The labelled images (every 10th hemorrhage, every 5th normal) played no part in choosing
 * the automatic rule (scripts/threshold-loop.ts, seeded random subsets). The measured rates
 * are printed and attached to the report.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { apiCall, goView, shot } from './app';
import { finishTest, startTestServer, type RunningServer } from './server';

const HEADCT = join(process.env.SWAN_DATA_ROOT ?? join(process.cwd(), '..', 'shared', 'datasets'), 'headct');
const FOLDER = existsSync(join(HEADCT, 'head_ct')) ? join(HEADCT, 'head_ct') : '/work/shared/datasets/headct/head_ct';

const name = (i: number) => `${String(i).padStart(3, '0')}.png`;
const isHemorrhage = (n: string) => Number(n.slice(0, 3)) < 100;
const HEMORRHAGES = Array.from({ length: 10 }, (_, k) => name(5 + 10 * k));
const NORMALS = Array.from({ length: 20 }, (_, k) => name(102 + 5 * k));

let dir: string;
let server: RunningServer;

test.skip(!existsSync(FOLDER), `HeadCT not found at ${FOLDER}`);
test.skip(process.env.SWAN_E2E_HEADCT !== '1', 'set SWAN_E2E_HEADCT=1 to play the HeadCT loop');

test.beforeEach(async () => {
  ({ dir, server } = await startTestServer('swan-e2e-headct-'));
});

// eslint-disable-next-line no-empty-pattern -- Playwright requires a destructured fixtures argument
test.afterEach(async ({}, info) => {
  await finishTest(server, dir, info);
});

interface Item {
  id: number;
  name: string;
  label: string;
  flagged: boolean;
  score: number | null;
}

async function unlabelled(): Promise<Item[]> {
  const r = await apiCall<{ items: Item[] }>(server, 'images.list', {
    offset: 0,
    limit: 500,
    filter: { label: 'unlabelled', scored: true },
    sort: 'score_desc',
  });
  return r.items;
}

async function labelOne(page: Page, file: string, key: 'g' | 'd'): Promise<void> {
  await page.getByTestId('filter-search').fill(file);
  await expect(page.getByTestId('gallery-total')).toHaveText('1 image');
  const c = page.locator(`[data-testid="image-cell"][data-name="${file}"]`);
  await c.click();
  await page.keyboard.press(key);
  await expect(c).toHaveAttribute('data-label', key === 'g' ? 'good' : 'defect');
}

async function retrain(page: Page, version: number): Promise<void> {
  await goView(page, 'train');
  await page.getByTestId('retrain').click();
  await expect(page.getByTestId('train-progress')).toBeVisible();
  await expect(page.getByTestId('train-finished')).toContainText(`Model v${version}`, { timeout: 15 * 60_000 });
  await expect
    .poll(async () => (await apiCall<{ unscored: number; job: unknown }>(server, 'scoring.status')).unscored, {
      timeout: 10 * 60_000,
    })
    .toBe(0);
  await expect
    .poll(async () => (await apiCall<{ job: unknown }>(server, 'scoring.status')).job, { timeout: 60_000 })
    .toBeNull();
}

/** Realised rates on the unlabelled images against what Review shows; returns them for the log. */
async function checkQueue(page: Page, round: number, info: Parameters<typeof shot>[2]) {
  await goView(page, 'review');
  await page.getByTestId('filter-unlabelled').check();
  const items = await unlabelled();
  const normals = items.filter((i) => !isHemorrhage(i.name));
  const hem = items.filter((i) => isHemorrhage(i.name));
  const fa = normals.filter((i) => i.flagged).length / normals.length;
  const caught = hem.filter((i) => i.flagged).length / hem.length;
  const line = page.getByTestId('queue-rates');
  await expect(line).toHaveAttribute('data-unlabelled', String(items.length));
  const shown = {
    flagged: Number(await line.getAttribute('data-flagged')),
    fa: Number(await line.getAttribute('data-fa')),
    faHigh: Number(await line.getAttribute('data-fa-high')),
    catch: Number(await line.getAttribute('data-catch')),
    catchLow: Number(await line.getAttribute('data-catch-low')),
  };
  const measured = {
    round,
    unlabelled: items.length,
    normals: normals.length,
    hemorrhages: hem.length,
    flagged: items.filter((i) => i.flagged).length,
    falseAlarmRate: fa,
    catchRate: caught,
    shown,
    threshold: (await apiCall<{ threshold: number }>(server, 'threshold.get')).threshold,
  };
  console.log(`headct loop: ${JSON.stringify(measured)}`);
  await info?.attach(`rates-after-retrain-${round}`, {
    body: JSON.stringify(measured, null, 2),
    contentType: 'application/json',
  });
  // What the queue shows is what is there: the same images, the same flags.
  expect(shown.flagged).toBe(measured.flagged);
  await expect(page.getByTestId('queue-total')).toContainText(`${items.length} in queue`);
  // The automatic threshold holds on the unseen images.
  expect(fa, `false alarms on ${normals.length} unlabelled normals`).toBeLessThanOrEqual(0.1);
  expect(caught, `hemorrhages caught of ${hem.length} unlabelled`).toBeGreaterThanOrEqual(0.7);
  // And keeps what the view promised: false alarms within the upper bound, catch above the lower.
  expect(fa).toBeLessThanOrEqual(shown.faHigh);
  expect(caught).toBeGreaterThanOrEqual(shown.catchLow);
  return measured;
}

test('HeadCT: the automatic threshold holds on the queue after each retrain', async ({ page }, info) => {
  test.setTimeout(40 * 60_000);
  await page.goto(server.url);
  await page.getByTestId('project-name-input').fill('HeadCT');
  await page.getByTestId('project-create').click();
  await expect(page.getByTestId('view-import')).toBeVisible();
  await page.getByTestId('layout-paths').check();
  await page.getByTestId('import-path').fill(FOLDER);
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-summary')).toBeVisible({ timeout: 5 * 60_000 });
  await expect(page.getByTestId('import-imported')).toHaveText('200');
  await shot(page, 'headct-01-import', info);

  await goView(page, 'label');
  for (const f of HEMORRHAGES) await labelOne(page, f, 'd');
  for (const f of NORMALS) await labelOne(page, f, 'g');
  await page.getByTestId('filter-search').fill('');
  await expect(page.getByTestId('gallery-total')).toHaveText('200 images');
  const counts = await apiCall<{ counts: { good: number; defect: number } }>(server, 'project.current');
  expect(counts.counts).toMatchObject({ good: 20, defect: 10 });
  await shot(page, 'headct-02-label', info);
  // The full-size viewer: zoom in, the whole image (no crop), close with Esc.
  await page.locator('[data-testid="image-cell"]').first().dblclick();
  await expect(page.getByTestId('image-viewer')).toBeVisible();
  await page.getByTestId('viewer-zoom-in').click();
  await expect(page.getByTestId('viewer-canvas')).toHaveAttribute('data-zoom', '1.250');
  await shot(page, 'headct-03-label-viewer', info);
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('image-viewer')).toHaveCount(0);

  await retrain(page, 1);
  await shot(page, 'headct-04-train-done', info);
  const first = await checkQueue(page, 1, info);
  await page.getByTestId('queue-item').first().click();
  await expect(page.getByTestId('heatmap')).toBeVisible();
  await expect(page.getByTestId('heatmap-scale')).toBeVisible();
  await shot(page, 'headct-05-review', info);
  await page.getByTestId('heatmap-toggle').uncheck();
  await expect(page.getByTestId('heatmap')).toHaveCount(0);
  await page.getByTestId('heatmap-toggle').check();
  await page.getByTestId('open-viewer').click();
  await expect(page.getByTestId('viewer-heatmap')).toBeVisible();
  await shot(page, 'headct-06-review-viewer', info);
  await page.keyboard.press('Escape');

  // Decide the top 12 of the unlabelled queue by the ground truth; Review stays live.
  await page.getByTestId('queue-item').first().click();
  for (let k = 0; k < 12; k++) {
    const top = (await unlabelled())[0]!;
    await expect(page.getByTestId('detail-name')).toHaveText(top.name);
    await page.keyboard.press(isHemorrhage(top.name) ? 'd' : 'g');
    await expect(page.getByTestId('queue-rates')).toHaveAttribute(
      'data-unlabelled',
      String(first.unlabelled - k - 1),
    );
    await expect(page.getByTestId('queue-total')).toContainText(`${first.unlabelled - k - 1} in queue`);
  }
  await shot(page, 'headct-07-review-decided', info);

  await retrain(page, 2);
  await checkQueue(page, 2, info);
  await shot(page, 'headct-08-review-v2', info);

  await goView(page, 'evaluate');
  await expect(page.getByTestId('eval-model-2')).toBeVisible();
  await shot(page, 'headct-09-evaluate', info);
});
