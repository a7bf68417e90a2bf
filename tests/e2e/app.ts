/** Page helpers shared by the e2e specs: navigation, screenshots, API calls with the token. */
import { fileURLToPath } from 'node:url';
import { expect, type Page, type TestInfo } from '@playwright/test';
import { join } from 'node:path';
import type { RunningServer } from './server';

export const SCREENSHOTS = fileURLToPath(new URL('../../test-results/screenshots', import.meta.url));

export async function shot(page: Page, name: string, info?: TestInfo): Promise<string> {
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  if (info) await info.attach(name, { path, contentType: 'image/png' });
  return path;
}

export async function goView(
  page: Page,
  view: 'projects' | 'import' | 'label' | 'train' | 'review' | 'evaluate' | 'report',
): Promise<void> {
  await page.getByTestId(`nav-${view}`).click();
  await expect(page.getByTestId(`view-${view}`)).toBeVisible();
}

/** Calls the API directly (for assertions the UI does not print). */
export async function apiCall<T>(server: RunningServer, op: string, input: unknown = {}): Promise<T> {
  const res = await fetch(`${server.origin}/api/${op}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${server.token}` },
    body: JSON.stringify(input),
  });
  const body = (await res.json()) as { ok: boolean; data?: T; error?: { message: string } };
  if (!body.ok) throw new Error(`${op}: ${body.error?.message}`);
  return body.data as T;
}

/** Sets a range input's value the way a user drag would (input event). */
export async function setSlider(page: Page, testId: string, value: number): Promise<void> {
  await page.getByTestId(testId).evaluate((el, v) => {
    const input = el as HTMLInputElement;
    input.value = String(v);
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
}
