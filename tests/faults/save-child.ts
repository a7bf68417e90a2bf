/**
 * Saves a large model into a training run's folder with the engine's real saveModel, for the
 * kill test (killed mid-save). Args: <projectDir> <runId>.
 */
import { saveModel } from '../../src-main/engine/model-file';
import type { DraState } from '../../src-main/engine/heads/state';
import { ProjectStore } from '../../src-main/project/store';

const [dir, runId] = process.argv.slice(2);
const store = ProjectStore.open(dir);
const big = new Float32Array(64 * 1024 ** 2).fill(0.5);
const state = {
  formatVersion: 1,
  settings: { seed: 0 },
  reference: [],
  weights: { big },
} as unknown as DraState;
console.log('SAVING');
for (;;) {
  await saveModel(store.runDir(Number(runId)), {
    state,
    backbone: { id: 'mobilenet_v1_0.75', inputSize: 224, featureLayer: 'conv_pw_13_relu', levels: 2 },
    trainingImageIds: [],
  });
}
