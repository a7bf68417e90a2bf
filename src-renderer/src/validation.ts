import type { OpOutput } from './api/client';

type ModelInfo = OpOutput<'models.list'>['models'][number];

/**
 * 'provisional' while the model's background cross-validation is pending or running (metrics
 * null, rates in-sample, supervised weight provisional); 'failed' when it failed; null when it
 * is done, was run while training, or the model is older than background validation.
 */
export function validationState(m: ModelInfo | null | undefined): 'provisional' | 'failed' | null {
  const s = m?.validation?.status;
  if (s === 'pending' || s === 'running') return 'provisional';
  return s === 'failed' ? 'failed' : null;
}
