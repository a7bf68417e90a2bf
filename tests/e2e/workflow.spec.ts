/**
 * The inspector's whole loop in a real browser against the real server and engine:
 * import a generated set, label two defects and the known-good parts, retrain, review
 * the ranked queue, move the threshold, then restart the server and find everything kept.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { apiCall, goView, setSlider, shot } from './app';
import { generateFixtures } from './fixtures';
import { startServer, type RunningServer } from './server';

/** Training steps for the e2e run (the app's default is the engine's). */
const STEPS = Number(process.env.SWAN_E2E_STEPS ?? 40);

let dir: string;
let server: RunningServer | null = null;
const logs: string[] = [];

test.beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'swan-e2e-'));
});

// eslint-disable-next-line no-empty-pattern -- Playwright requires a destructured fixtures argument
test.afterEach(async ({}, info) => {
  if (server) {
    await server.stop();
    logs.push(server.log());
  }
  server = null;
  if (info.status !== info.expectedStatus)
    await info.attach('server.log', {
      body: logs.join('\n----- restart -----\n'),
      contentType: 'text/plain',
    });
  rmSync(dir, { recursive: true, force: true });
});

interface Summary {
  name: string;
  label: string;
  score: number | null;
  flagged: boolean;
  className: string | null;
}

async function queueNames(page: Page, n: number): Promise<string[]> {
  const items = page.getByTestId('queue-item');
  await expect(items.first()).toBeVisible();
  const names = await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-name') ?? ''));
  return names.slice(0, n);
}

async function cell(page: Page, name: string) {
  const c = page.locator(`[data-testid="image-cell"][data-name="${name}"]`);
  await expect(c).toBeVisible();
  return c;
}

test('import, label, retrain, review, threshold, restart', async ({ page }, info) => {
  const fixtures = await generateFixtures(join(dir, 'images'));
  server = await startServer({ projectsRoot: join(dir, 'projects') });
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));

  // Projects
  await page.goto(server.url);
  await expect(page.getByTestId('view-projects')).toBeVisible();
  await shot(page, '01-projects-empty', info);
  await page.getByTestId('project-name-input').fill('E2E parts');
  await page.getByTestId('project-create').click();

  // Import: 46 images, the two broken files reported with their reasons
  await expect(page.getByTestId('view-import')).toBeVisible();
  await page.getByTestId('layout-paths').check();
  await page.getByTestId('import-path').fill(fixtures.root);
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-summary')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('import-imported')).toHaveText('46');
  await expect(page.getByTestId('import-skipped-count')).toHaveText('2');
  const skipped = page.getByTestId('skipped-row');
  await expect(skipped).toHaveCount(2);
  await expect(skipped.filter({ hasText: 'notes.png' })).toHaveCount(1);
  await expect(skipped.filter({ hasText: 'empty.png' })).toHaveCount(1);
  await shot(page, '02-import-summary', info);

  // Label: two defect classes, one labelled defect of each, 35 known-good parts
  await goView(page, 'label');
  await expect(page.getByTestId('gallery-total')).toHaveText('46 images');
  for (const name of ['scratch', 'spot']) {
    await page.getByTestId('new-class-input').fill(name);
    await page.getByTestId('new-class-add').click();
    await expect(page.getByTestId(`label-class-${name}`)).toBeVisible();
  }
  // The gallery only renders what is on screen: find each part by name, then label by key.
  for (const [name, key] of [
    ['part_scratch_0.png', '1'],
    ['part_spot_0.png', '2'],
  ] as const) {
    await page.getByTestId('filter-search').fill(name);
    await expect(page.getByTestId('gallery-total')).toHaveText('1 image');
    await (await cell(page, name)).click();
    await page.keyboard.press(key);
    await expect(await cell(page, name)).toHaveAttribute('data-label', 'defect');
  }
  await expect(page.getByTestId('label-class-scratch')).toContainText('1');

  // Select-all on a filter, then keyboard: good_000..good_029 are known good.
  for (const prefix of ['good_00', 'good_01', 'good_02']) {
    await page.getByTestId('filter-search').fill(prefix);
    await expect(page.getByTestId('gallery-total')).toHaveText('10 images');
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+a');
    await expect(page.getByTestId('selected-count')).toHaveText('10 selected');
    await page.keyboard.press('g');
    await expect(page.locator('[data-testid="image-cell"][data-label="good"]')).toHaveCount(10);
  }
  // Shift-click range: good_030..good_034.
  await page.getByTestId('filter-search').fill('good_03');
  await (await cell(page, 'good_030.png')).click();
  await (await cell(page, 'good_034.png')).click({ modifiers: ['Shift'] });
  await expect(page.getByTestId('selected-count')).toHaveText('5 selected');
  await page.getByTestId('label-good').click();
  await page.getByTestId('filter-search').fill('');
  await expect(page.getByTestId('gallery-total')).toHaveText('46 images');
  const counts = await apiCall<{ counts: { good: number; defect: number; unlabelled: number } }>(
    server,
    'project.current',
  );
  expect(counts.counts).toEqual({ good: 35, defect: 2, unlabelled: 9 });
  await shot(page, '03-label', info);

  // Train: one click; progress with stage, then a new active model
  await goView(page, 'train');
  // Fewer steps than the default keep the test to minutes on a busy 2-core machine.
  await page.getByTestId('setting-steps').fill(String(STEPS));
  // The PatchCore head is a project setting, off by default; the head plan follows the box.
  const patchcore = page.getByTestId('setting-patchcore');
  await expect(patchcore).not.toBeChecked();
  await expect(page.getByTestId('head-plan-patchcore')).toContainText('switched off');
  await patchcore.check();
  await expect(page.getByTestId('head-plan-patchcore')).toContainText('✓');
  await patchcore.uncheck();
  await page.getByTestId('retrain').click();
  await expect(page.getByTestId('train-progress')).toBeVisible();
  await expect(page.getByTestId('train-stage')).not.toBeEmpty();
  const finished = page.getByTestId('train-finished');
  await expect(page.getByTestId('loss-charts').or(finished)).toBeVisible({ timeout: 10 * 60_000 });
  if (await page.getByTestId('loss-charts').isVisible()) {
    await expect(page.getByTestId('train-eta')).toContainText('step');
    await shot(page, '04-train-running', info);
  }
  await expect(finished).toBeVisible({ timeout: 10 * 60_000 });
  await expect(finished).toContainText('Model v1');
  await expect(page.getByTestId('active-model')).toHaveText('model v1');
  // v1 is active before its cross-validation (it waits for the queue's scoring, then runs 3
  // folds): until then the run's outcome and the model's row say the numbers are provisional.
  const v1 = await apiCall<{ model: { validation?: { status: string } } | null }>(server, 'models.active');
  const trainValidation = page.getByTestId('train-validation');
  const reviewValidation = page.getByTestId('review-validation');
  const validating = v1.model?.validation?.status === 'pending' || v1.model?.validation?.status === 'running';
  if (validating) {
    await expect(trainValidation.or(page.getByTestId('model-validation-1'))).toHaveCount(2);
    await expect(trainValidation).toContainText('rates and ranking are provisional');
    await shot(page, '05a-train-validating', info);
    // Review says so too; it may only be gone if the validation ended meanwhile.
    await goView(page, 'review');
    await expect
      .poll(async () => {
        if ((await reviewValidation.count()) > 0) {
          await shot(page, '05b-review-validating', info);
          return 'shown';
        }
        const { model } = await apiCall<{ model: { validation?: { status: string } } | null }>(
          server!,
          'models.active',
        );
        return model?.validation?.status === 'done' ? 'shown' : `missing while ${model?.validation?.status}`;
      })
      .toBe('shown');
  } else {
    // A machine fast enough to finish 3 folds before this line: the notice is gone already.
    info.annotations.push({
      type: 'note',
      description: `validation already ${v1.model?.validation?.status}`,
    });
  }
  // Scoring follows training: wait until every image has a score.
  await expect
    .poll(
      async () => (await apiCall<{ unscored: number; job: unknown }>(server!, 'scoring.status')).unscored,
      { timeout: 5 * 60_000 },
    )
    .toBe(0);
  // The retrain's cross-validation runs once the queue is scored, then the queue is scored
  // again with the weight it chose: wait for both before reading scores.
  await expect
    .poll(
      async () => {
        const { model } = await apiCall<{ model: { validation?: { status: string } } | null }>(
          server!,
          'models.active',
        );
        const { job } = await apiCall<{ job: unknown }>(server!, 'scoring.status');
        return job === null ? model?.validation?.status : 'scoring';
      },
      { timeout: 5 * 60_000 },
    )
    .toBe('done');
  // validation.finished reaches the page without leaving the view: the notices go.
  if (validating) {
    await expect(reviewValidation).toHaveCount(0);
    await expect(page.getByTestId('rates-provisional')).toHaveCount(0);
    await goView(page, 'train');
  }
  await expect(trainValidation).toHaveCount(0);
  await expect(page.getByTestId('model-validation-1')).toHaveCount(0);
  await shot(page, '05-train-done', info);

  // Review: the six defective parts lead the queue
  await goView(page, 'review');
  await expect(page.getByTestId('queue-total')).toContainText('46 in queue');
  // Validated: the expected rates are no longer marked provisional.
  await expect(page.getByTestId('queue-rates')).toHaveAttribute('data-provisional', 'false');
  await expect(page.getByTestId('rates-provisional')).toHaveCount(0);
  await expect(reviewValidation).toHaveCount(0);
  const top = await queueNames(page, 6);
  expect(
    top.every((n) => n.startsWith('part_')),
    `top of queue: ${top.join(', ')}`,
  ).toBe(true);
  await page.getByTestId('queue-item').first().click();
  const bars = page.getByTestId('head-bars');
  await expect(bars).toBeVisible();
  for (const head of ['seen', 'pseudo', 'residual', 'normality'])
    await expect(page.getByTestId(`head-bar-${head}`)).toBeVisible();
  const heat = page.getByTestId('heatmap');
  await expect(heat).toBeVisible();
  await expect.poll(() => heat.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
  await setSlider(page, 'heatmap-opacity', 0.8);
  await expect(heat).toHaveCSS('opacity', '0.8');
  await shot(page, '06-review', info);

  // Threshold: between the 6th and 7th scores flags exactly the six defects; lower flags more
  const ranked = (
    await apiCall<{ items: Summary[] }>(server, 'images.list', { offset: 0, limit: 46, sort: 'score_desc' })
  ).items;
  const s6 = ranked[5]!.score!;
  const s7 = ranked[6]!.score!;
  await setSlider(page, 'threshold-slider', (s6 + s7) / 2);
  await expect(page.getByTestId('flagged-count')).toHaveText('6 flagged');
  await page.getByTestId('filter-flagged').check();
  await expect(page.getByTestId('queue-total')).toContainText('6 in queue');
  await shot(page, '07-review-threshold', info);
  const s10 = ranked[9]!.score!;
  const s11 = ranked[10]!.score!;
  await setSlider(page, 'threshold-slider', (s10 + s11) / 2);
  await expect(page.getByTestId('flagged-count')).toHaveText('10 flagged');
  await expect(page.getByTestId('queue-total')).toContainText('10 in queue');

  // A keyboard decision in review becomes a label
  await page.getByTestId('filter-flagged').uncheck();
  await page.getByTestId('filter-unlabelled').check();
  const firstUnlabelled = (await queueNames(page, 1))[0]!;
  expect(firstUnlabelled.startsWith('part_')).toBe(true);
  await page.getByTestId('queue-item').first().click();
  await page.keyboard.press(firstUnlabelled.includes('scratch') ? '1' : '2');
  await expect
    .poll(
      async () => (await apiCall<{ counts: { defect: number } }>(server!, 'project.current')).counts.defect,
    )
    .toBe(3);

  // Evaluate on the labels, then export the inspection report.
  await goView(page, 'evaluate');
  await expect(page.getByTestId('eval-model-1')).toBeVisible();
  await expect(page.getByTestId('eval-auc')).toHaveText(/^[01]\.\d{3}$/);
  await expect(page.getByTestId('roc-chart')).toBeVisible();
  // The batch selector offers every image and the imported batch, with its image count.
  await expect(page.getByTestId('eval-batch').locator('option').nth(1)).toHaveText(/\(46\)$/);
  await shot(page, '12-evaluate', info);
  await goView(page, 'report');
  await expect(page.getByTestId('report-batch').locator('option').nth(1)).toHaveText(/\(46\)$/);
  const reports = join(dir, 'reports');
  await page.getByTestId('report-dir').fill(reports);
  await page.getByTestId('report-export').click();
  await expect(page.getByTestId('report-result')).toBeVisible({ timeout: 120_000 });
  const pdf = (await page.getByTestId('report-pdf').textContent())!.trim();
  const csv = (await page.getByTestId('report-csv').textContent())!.trim();
  expect(statSync(pdf).size).toBeGreaterThan(1000);
  // The report states the model's held-out metrics from the retrain's cross-validation.
  const text = execFileSync('pdftotext', ['-layout', pdf, '-'], { encoding: 'utf8' });
  // Two labelled defects are too few for a held-out AUC: the report says so instead of a number.
  expect(text).toMatch(/Held-out metrics\s+not measured: AUC-ROC not estimable: 35 good and 2 defect/);
  // Its first page, as an artifact to look at.
  const artifacts = join('test-results', 'report');
  mkdirSync(artifacts, { recursive: true });
  execFileSync('pdftoppm', [
    '-png',
    '-r',
    '80',
    '-f',
    '1',
    '-l',
    '1',
    '-singlefile',
    pdf,
    join(artifacts, 'e2e-report-page1'),
  ]);
  expect(statSync(join(artifacts, 'e2e-report-page1.png')).size).toBeGreaterThan(5000);
  expect(readFileSync(csv, 'utf8').trim().split('\n').length).toBe(47);
  await shot(page, '13-report', info);

  // Restart the server: labels, scores, model and threshold are all still there
  const before = (
    await apiCall<{ items: Summary[] }>(server, 'images.list', { offset: 0, limit: 46, sort: 'score_desc' })
  ).items;
  const threshold = (await apiCall<{ threshold: number | null }>(server, 'threshold.get')).threshold;
  const projectPath = (await apiCall<{ path: string }>(server, 'project.current')).path;
  await server.stop();
  logs.push(server.log());
  server = await startServer({ projectsRoot: join(dir, 'projects') });
  await page.goto(server.url);
  await expect(page.getByTestId('view-projects')).toBeVisible();
  const recent = page.getByTestId('recent-item').filter({ hasText: projectPath });
  await expect(recent).toHaveCount(1);
  await shot(page, '08-projects-recent', info);
  await recent.getByRole('button', { name: 'Open' }).click();
  await expect(page.getByTestId('view-label')).toBeVisible();
  await expect(page.getByTestId('active-model')).toHaveText('model v1');
  const after = (
    await apiCall<{ items: Summary[] }>(server, 'images.list', { offset: 0, limit: 46, sort: 'score_desc' })
  ).items;
  expect(after.map((i) => [i.name, i.label, i.className, i.score])).toEqual(
    before.map((i) => [i.name, i.label, i.className, i.score]),
  );
  expect((await apiCall<{ threshold: number | null }>(server, 'threshold.get')).threshold).toBe(threshold);
  await page.getByTestId('filter-defect').click();
  await expect(page.getByTestId('gallery-total')).toHaveText('3 images');
  await expect(page.locator('[data-testid="image-cell"][data-label="defect"]')).toHaveCount(3);
  await goView(page, 'review');
  expect((await queueNames(page, 6)).every((n) => n.startsWith('part_'))).toBe(true);
  await expect(page.getByTestId('flagged-count')).toHaveText('10 flagged');
  await shot(page, '09-review-after-restart', info);

  // Threshold by target: no more than 0 % of the good images may be flagged.
  await page.getByTestId('target-rate').fill('0');
  await page.getByTestId('target-apply').click();
  await page.getByTestId('filter-flagged').check();
  await expect(page.getByTestId('flagged-count')).not.toHaveText('10 flagged');
  const flaggedNow = (
    await apiCall<{ items: Summary[] }>(server, 'images.list', {
      offset: 0,
      limit: 46,
      filter: { aboveThreshold: true },
    })
  ).items;
  expect(flaggedNow.length).toBeGreaterThanOrEqual(6);
  expect(flaggedNow.filter((i) => i.label === 'good')).toEqual([]);
  await expect(page.getByTestId('flagged-count')).toHaveText(`${flaggedNow.length} flagged`);
  await expect(page.getByTestId('threshold-rates')).toContainText('false alarms 0.0 %');

  // Cancel a retrain: the run stops and model v1 stays active.
  await goView(page, 'train');
  // Advanced settings: outlier exposure asks for its folder; the fold count is there too.
  await page.getByRole('button', { name: 'Show advanced settings' }).click();
  await expect(page.getByTestId('setting-validate-folds')).toHaveValue('3');
  await expect(page.getByTestId('setting-outlier-dir')).toHaveCount(0);
  await page.getByLabel('Pseudo anomalies').selectOption('outlier');
  await expect(page.getByTestId('setting-outlier-dir')).toBeVisible();
  await page.getByLabel('Pseudo anomalies').selectOption('cutpaste');
  await page.getByRole('button', { name: 'Hide advanced settings' }).click();
  await page.getByTestId('setting-steps').fill('5000');
  await page.getByTestId('retrain').click();
  await expect(page.getByTestId('train-progress')).toBeVisible();
  await page.getByTestId('cancel-training').click();
  await expect(page.getByTestId('train-finished')).toContainText('cancelled', { timeout: 60_000 });
  await expect(page.getByTestId('active-model')).toHaveText('model v1');
  expect((await apiCall<{ model: { version: number } | null }>(server, 'models.active')).model?.version).toBe(
    1,
  );

  // Model files: export v1, import it back as v2 (inactive), delete v2.
  await page.getByTestId('model-path').fill(join(dir, 'models'));
  await page.getByTestId('model-row-1').getByRole('button', { name: 'Export' }).click();
  await expect(page.getByTestId('model-message')).toContainText('.swanmodel');
  const file = /Exported to (\S+\.swanmodel)/.exec(
    (await page.getByTestId('model-message').textContent()) ?? '',
  )![1]!;
  await page.getByTestId('model-path').fill(file);
  await page.getByTestId('model-import').click();
  await expect(page.getByTestId('model-row-2')).toBeVisible();
  await expect(page.getByTestId('active-model')).toHaveText('model v1');
  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('model-row-2').getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByTestId('model-row-2')).toHaveCount(0);
  await shot(page, '14-models', info);
});
