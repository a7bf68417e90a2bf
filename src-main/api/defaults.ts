/** App defaults that the main process and the renderer both need (no dependencies, so the renderer bundle stays small). */

/**
 * Folds of the cross-validation every retrain runs for its held-out metrics (and the
 * out-of-fold good scores a false-alarm target is set on). A constant, not a project
 * setting: the project has no training preferences of its own yet; a run may still ask
 * for another K (training.start settings.validateFolds, 0 = off). 3 folds cost about
 * three more head trainings on the cached features; the engine uses fewer when the
 * labels do not allow 3.
 */
export const DEFAULT_VALIDATE_FOLDS = 3;
