/** Import paths other than a plain folder: a data-set layout that carries labels, and drag-and-drop. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import sharp from 'sharp';
import { apiCall, goView, shot } from './app';
import { finishTest, startTestServer, type RunningServer } from './server';

let dir: string;
let server: RunningServer;

async function png(path: string, shade: number): Promise<void> {
  await sharp({
    create: { width: 24, height: 24, channels: 3, background: { r: shade, g: shade, b: shade } },
  })
    .png()
    .toFile(path);
}

test.beforeEach(async () => {
  ({ dir, server } = await startTestServer('swan-e2e-import-'));
});

// eslint-disable-next-line no-empty-pattern -- Playwright requires a destructured fixtures argument
test.afterEach(async ({}, info) => {
  await finishTest(server, dir, info);
});

test('an MVTec layout imports with its labels and classes', async ({ page }, info) => {
  const root = join(dir, 'mvtec');
  for (const sub of ['train/good', 'test/good', 'test/crack'])
    mkdirSync(join(root, sub), { recursive: true });
  for (let i = 0; i < 4; i++) await png(join(root, 'train/good', `${i}.png`), 100 + i);
  for (let i = 0; i < 2; i++) await png(join(root, 'test/good', `${i}.png`), 120 + i);
  for (let i = 0; i < 2; i++) await png(join(root, 'test/crack', `${i}.png`), 20 + i);
  // A truncated PNG among them: reported and skipped, the rest imported.
  const whole = readFileSync(join(root, 'test/crack', '0.png'));
  writeFileSync(join(root, 'test/crack', 'cut.png'), whole.subarray(0, Math.floor(whole.length / 2)));

  await page.goto(server.url);
  await page.getByTestId('project-name-input').fill('Layouts');
  await page.getByTestId('project-create').click();
  await page.getByTestId('layout-mvtec').check();
  await page.getByTestId('import-path').fill(root);
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-summary')).toBeVisible();
  await expect(page.getByTestId('import-imported')).toHaveText('8');
  await expect(page.getByTestId('import-skipped-count')).toHaveText('1');
  await expect(page.getByTestId('skipped-row')).toContainText('cut.png');
  await shot(page, '11-import-mvtec', info);

  await goView(page, 'label');
  await page.getByTestId('filter-defect').click();
  await expect(page.getByTestId('gallery-total')).toHaveText('2 images');
  await expect(page.locator('[data-testid="image-cell"][data-label="defect"]').first()).toContainText(
    'crack',
  );
  const info2 = await apiCall<{ counts: { good: number; defect: number } }>(server, 'project.current');
  expect(info2.counts).toMatchObject({ good: 6, defect: 2 });
});

test('files dropped on the import area are uploaded and checked', async ({ page }) => {
  await apiCall(server, 'project.create', { name: 'Drops' });
  await page.goto(server.url);
  await goView(page, 'import');
  const good = join(dir, 'ok.png');
  await png(good, 90);
  const bytes = [...readFileSync(good)];
  await page.getByTestId('import-drop').evaluate((el, pngBytes) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(pngBytes)], 'dropped.png', { type: 'image/png' }));
    dt.items.add(new File(['plain text'], 'readme.png', { type: 'image/png' }));
    el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bytes);
  await expect(page.getByTestId('import-summary')).toBeVisible();
  await expect(page.getByTestId('import-imported')).toHaveText('1');
  await expect(page.getByTestId('skipped-row')).toContainText('readme.png');
  await goView(page, 'label');
  // Uploads are stored inside the project under a numbered name.
  await expect(page.locator('[data-testid="image-cell"][data-name$="dropped.png"]')).toBeVisible();
  await expect(page.getByTestId('gallery-total')).toHaveText('1 image');
});
