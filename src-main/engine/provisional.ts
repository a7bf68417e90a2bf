/**
 * The supervised heads' weight a model scores with until its cross-validation has chosen one
 * (the app's retrain saves and scores first and validates after: validate-model.ts). It must
 * be safe for kinds of defect nobody labelled: the weight the project's previous model chose
 * on its own cross-validation when there is one, else 0 (the unsupervised heads alone, the
 * reference select.ts's unseen-kind guard measures every candidate against). The PatchCore
 * head counts as set (settings.patchcoreWeight), as the validation will leave it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { DraState } from './heads/state';
import type { CombinationChoice } from './select';

export const PROVISIONAL_RULE = 'provisional, until the cross-validation chooses';

/** Whether the model has an unsupervised part for a weight of the supervised heads to be set against. */
function hasUnsupervisedPart(state: DraState): boolean {
  return (state.settings.knnHead && !!state.knn) || !!state.gaussian || !!state.patchcore;
}

export interface PreviousChoice {
  supervisedWeight: number;
}

const isWeight = (w: unknown): w is number => typeof w === 'number' && Number.isFinite(w) && w >= 0;

/** The chosen (not provisional) combination recorded in a model folder's manifest, if any. */
export async function chosenWeightOf(modelDir: string): Promise<PreviousChoice | undefined> {
  try {
    const m = JSON.parse(await readFile(path.join(modelDir, 'manifest.json'), 'utf8')) as {
      combination?: { rule?: unknown; supervisedWeight?: unknown };
    };
    const c = m.combination;
    if (c?.rule === PROVISIONAL_RULE || !isWeight(c?.supervisedWeight)) return undefined;
    return { supervisedWeight: c.supervisedWeight };
  } catch {
    return undefined;
  }
}

export function withProvisionalCombination(state: DraState, previous: PreviousChoice | undefined): DraState {
  // Without an unsupervised part there is nothing to weigh: the fixed weights, as validation would leave them.
  if (!hasUnsupervisedPart(state)) return state;
  const previousWeight = previous?.supervisedWeight;
  const weight = previousWeight ?? 0;
  const combination: CombinationChoice = {
    rule: PROVISIONAL_RULE,
    supervisedWeight: weight,
    candidates: [],
    nGood: 0,
    nDefect: 0,
    reason:
      previousWeight === undefined
        ? 'not cross-validated yet: the unsupervised heads alone until the validation chooses'
        : `not cross-validated yet: the weight the previous model chose (${weight}) until the validation chooses`,
  };
  return { ...state, combination };
}
