import { expect, test } from '@playwright/test';
import { finishTest, startTestServer, type RunningServer } from './server';

let server: RunningServer;
let dir: string;

test.beforeEach(async () => {
  ({ dir, server } = await startTestServer('swan-e2e-sec-'));
});

// eslint-disable-next-line no-empty-pattern -- Playwright requires a destructured fixtures argument
test.afterEach(async ({}, info) => {
  await finishTest(server, dir, info);
});

test('requests without the token are refused', async ({ page, request }) => {
  const api = `${server.origin}/api/project.current`;
  const none = await request.post(api, { data: {} });
  expect(none.status()).toBe(401);
  expect(((await none.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
  const wrong = await request.post(api, { data: {}, headers: { authorization: 'Bearer not-the-token' } });
  expect(wrong.status()).toBe(401);
  const file = await request.get(`${server.origin}/files/image/1`);
  expect(file.status()).toBe(401);

  // The page itself is refused without the token, and served with it.
  const bare = await page.goto(server.origin + '/');
  expect(bare?.status()).toBe(401);
  const ok = await page.goto(server.url);
  expect(ok?.status()).toBe(200);
  await expect(page.getByTestId('view-projects')).toBeVisible();

  const good = await request.post(api, { data: {}, headers: { authorization: `Bearer ${server.token}` } });
  expect(good.status()).toBe(200);
});
