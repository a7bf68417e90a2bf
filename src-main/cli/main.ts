/**
 * `swan`: train, score and benchmark from the command line. Drives the same engine as
 * the app. Usage errors and bad input print one line and exit with code 2.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CliError } from './cli-error';
import type { runTrain } from './commands/train';
import type { runScore } from './commands/score';
import type { runBench } from './commands/bench';
import type { runBenchTable } from './commands/bench-table';
import { METHODS } from './bench/methods';
import type { runApi } from './commands/api';
import type { runReport } from './commands/report';
import type { runDoctor } from './commands/doctor';
import { DataError } from '../data/data-error';
import { EngineError } from '../engine/types';

function intArg(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    return n;
  };
}

const inputOption = () =>
  new Option('--input <size>', 'model input size').choices(['224', '448']).default('224');
const squareOption = () =>
  new Option('--square', 'square input even for elongated images (default: they keep their aspect)');

// The engine's BACKBONE_NAMES (not imported: that module loads TF.js at start-up).
const backboneOption = (what: string) =>
  new Option('--backbone <name>', what).choices(['mobilenet', 'resnet50', 'resnet18']);

// Each command's module is imported when it runs: a command loads only what it needs (the
// report's PDF and SQLite code cost a `swan train` about 0.3 s of start-up otherwise).
export function buildProgram(): Command {
  const program = new Command('swan')
    .description('Swan Inspector: few-shot anomaly detection with DRA')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('train')
    .description('train a DRA model on a data set (its protocol training split)')
    .requiredOption('--data <name|spec>', 'headct, elpv, mvtec:DIR, folders:DIR (with --normal), csv:FILE')
    .option('--normal <class>', 'name of the normal class for folders:DIR')
    .option('--data-root <dir>', 'folder holding the named data sets')
    .option('--shots <n>', 'labelled anomalies', intArg('--shots', 0, 1000), 10)
    .option('--seed <n>', 'random seed', intArg('--seed', 0, 2 ** 31 - 1), 0)
    .option('--setting <setting>', 'general or hard', 'general')
    .option('--known-class <class>', 'hard setting: the labelled anomaly class')
    .addOption(inputOption())
    .addOption(
      backboneOption(
        "mobilenet (fast, default), resnet50 (ResNet-50 v2 stages 1-3, accurate) or resnet18 (the paper's; weights you supply, SWAN_RESNET18_DIR)",
      ).default('mobilenet'),
    )
    .addOption(
      new Option('--mode <mode>', 'fast: frozen backbone; full: fine-tune (native TF only)')
        .choices(['fast', 'full'])
        .default('fast'),
    )
    .option('--no-knn', 'switch off the nearest-normal head')
    .option('--feature-layer <name>', 'backbone layer whose output feeds the heads')
    .option('--set <key=value...>', 'override a training setting (JSON value), for ablations')
    .option('--outliers <dir>', 'outlier exposure: pseudo anomalies are the images of this folder')
    .option(
      '--validate <k>',
      'K-fold cross-validation after training: held-out AUC-ROC/AP into the model (0: off)',
      intArg('--validate', 0, 10),
      0,
    )
    .requiredOption('--out <dir>', 'model folder to write')
    .action(async (...args: Parameters<typeof runTrain>) =>
      (await import('./commands/train')).runTrain(...args),
    );

  program
    .command('score')
    .description('score images with a trained model')
    .requiredOption('--model <dir>', 'model folder')
    .argument('<paths...>', 'image files or folders')
    .option('--csv <file>', 'write the scores as CSV')
    .addOption(backboneOption("the backbone the model must have been trained on (default: the model's own)"))
    .action(async (...args: Parameters<typeof runScore>) =>
      (await import('./commands/score')).runScore(...args),
    );

  const methodOption = () =>
    new Option(
      '--method <name>',
      'what runs: swan (product default), swan-pc (with the PatchCore head), dra (paper), knn, devnet, patchcore',
    )
      .choices([...METHODS])
      .default('swan');
  program
    .command('bench')
    .description("run the paper's protocol and print AUC-ROC / AP against the published numbers")
    .requiredOption(
      '--dataset <name|spec>',
      'headct, elpv, kolektorsdd, bottle, mvtec:DIR, folders:DIR, csv:FILE',
    )
    .option('--normal <class>', 'name of the normal class for folders:DIR')
    .option('--data-root <dir>', 'folder holding the named data sets')
    .addOption(
      new Option('--setting <setting>', 'protocol setting').choices(['general', 'hard']).default('general'),
    )
    .option('--shots <n>', 'labelled anomalies (10 or 1 in the paper)', intArg('--shots', 1, 1000), 10)
    .option('--seeds <n>', 'number of seeded runs', intArg('--seeds', 1, 100), 3)
    .option(
      '--seed-start <n>',
      'first seed (defaults were chosen on 0-2)',
      intArg('--seed-start', 0, 2 ** 31 - 1),
      0,
    )
    .addOption(inputOption())
    .addOption(squareOption())
    .addOption(backboneOption('mobilenet (fast, default) or resnet50 (accurate)').default('mobilenet'))
    .addOption(methodOption())
    .addOption(
      new Option('--baseline <name>', 'same as --method <name>').choices(['devnet', 'knn', 'patchcore']),
    )
    .option('--no-knn', 'switch off the nearest-normal head')
    .option('--feature-layer <name>', 'backbone layer whose output feeds the heads')
    .option('--set <key=value...>', 'override a training setting (JSON value), for ablations')
    .option('--outliers <dir>', 'outlier exposure: pseudo anomalies are the images of this folder')
    .option('--json <file>', 'write the results as JSON')
    .option('--dump-parts', "with --json: keep each run's selection evidence and test parts (diagnostic)")
    .action(async (...args: Parameters<typeof runBench>) =>
      (await import('./commands/bench')).runBench(...args),
    );

  program
    .command('bench-table')
    .description('run the whole benchmark table and write docs/benchmarks/<name>.md and .json')
    .option('--data-root <dir>', 'folder holding the named data sets')
    .option('--datasets <names>', 'comma-separated named data sets (default: every one in the data root)')
    .option('--methods <names>', `comma-separated methods (default: ${METHODS.join(',')})`)
    .option('--shots <list>', 'comma-separated shot counts', '10,1')
    .option(
      '--settings <list>',
      'comma-separated settings to run (general, hard; default: both where they apply)',
    )
    .option('--seeds <n>', 'number of seeds', intArg('--seeds', 1, 100), 3)
    .option(
      '--seed-start <n>',
      'first seed (defaults were chosen on 0-2)',
      intArg('--seed-start', 0, 2 ** 31 - 1),
      100,
    )
    .addOption(inputOption())
    .addOption(squareOption())
    .addOption(backboneOption('mobilenet (fast, default) or resnet50 (accurate)').default('mobilenet'))
    .option('--name <name>', 'file name (without extension) under --out', 'table')
    .option('--out <dir>', 'folder to write into', 'docs/benchmarks')
    .option(
      '--merge <files...>',
      'tables (JSON) to merge in, later ones winning a row both hold; alone: only merge',
    )
    .action(async (...args: Parameters<typeof runBenchTable>) =>
      (await import('./commands/bench-table')).runBenchTable(...args),
    );

  program
    .command('report')
    .description('export the inspection report (PDF and CSV) of a project batch')
    .requiredOption('--project <dir>', 'project folder')
    .option('--batch <name>', 'batch (import) name; default: every image')
    .requiredOption('--out <dir>', 'folder to write the report into')
    .addOption(
      new Option('--format <format>', 'what to write').choices(['pdf', 'csv', 'both']).default('both'),
    )
    .action(async (...args: Parameters<typeof runReport>) =>
      (await import('./commands/report')).runReport(...args),
    );

  program
    .command('api')
    .description("call one operation of the app's typed API (the same contract as the app's front doors)")
    .argument('<operation>', 'e.g. project.create, import.run, labels.set, training.start, images.list')
    .argument('[json]', 'the payload, as JSON')
    .option('--project <dir>', 'open this project first')
    .option(
      '--projects-root <dir>',
      'folder of new projects and of the recent list (default: a scratch folder)',
    )
    .action(async (...args: Parameters<typeof runApi>) => (await import('./commands/api')).runApi(...args));

  program
    .command('doctor')
    .description('print the backend, full-mode support, GPU, backbones and runtimes found (for bug reports)')
    .action(async (...args: Parameters<typeof runDoctor>) =>
      (await import('./commands/doctor')).runDoctor(...args),
    );

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message; help and version exit 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError || err instanceof DataError || err instanceof EngineError) {
      process.stderr.write(`swan: ${err.message.split('\n')[0]}\n`);
      return 2;
    }
    throw err;
  }
}
