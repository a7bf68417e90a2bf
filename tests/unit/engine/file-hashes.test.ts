import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileContentHash } from '../../../src-main/data/decode';
import { FileHashes } from '../../../src-main/engine/features/file-hashes';
import { tempDir } from '../app/helpers';

describe('remembered file hashes', () => {
  const tmp = tempDir('swan-hashes-');
  afterAll(() => tmp.cleanup());

  it('are the content hash, and follow a rewrite even with the same size and modification time', async () => {
    const f = join(tmp.dir, 'a.bin');
    writeFileSync(f, 'first content');
    const hashes = new FileHashes();
    const first = await hashes.of(f);
    expect(first).toBe(await fileContentHash(f));
    expect(await hashes.of(f)).toBe(first);
    const { atime, mtime } = statSync(f);
    writeFileSync(f, 'other content');
    utimesSync(f, atime, mtime);
    expect(await hashes.of(f)).toBe(await fileContentHash(f));
    expect(await hashes.of(f)).not.toBe(first);
  });

  it('report a missing file as the hash of a file does', async () => {
    await expect(new FileHashes().of(join(tmp.dir, 'missing.png'))).rejects.toThrow(/file not found/);
  });
});
