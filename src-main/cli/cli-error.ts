/** An error the CLI prints as one line before exiting with code 2 (bad usage or input). */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}
