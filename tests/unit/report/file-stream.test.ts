import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeThroughStream } from '../../../src-main/report/file-stream';

describe('writeThroughStream', () => {
  it('a body that fails at once leaves nothing behind once the caller removes its file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swan-fs-'));
    try {
      for (let i = 0; i < 20; i++) {
        const file = join(dir, `r${i}.part`);
        await expect(
          writeThroughStream(file, async () => {
            throw new Error('stopped');
          }),
        ).rejects.toThrow('stopped');
        rmSync(file, { force: true });
        // A stream still opening would create the file again after the removal.
        await new Promise((r) => setTimeout(r, 20));
        expect(existsSync(file)).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes what the body pipes and resolves with its result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swan-fs-'));
    try {
      const file = join(dir, 'ok.txt');
      const n = await writeThroughStream(file, async ({ out }) => {
        out.end('hello');
        return 5;
      });
      expect(n).toBe(5);
      expect(readFileSync(file, 'utf8')).toBe('hello');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
