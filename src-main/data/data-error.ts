/**
 * A data set that cannot be read or split as asked (wrong folder, missing labels file,
 * too few anomalies). The message names the folder or file and what was expected.
 */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}
