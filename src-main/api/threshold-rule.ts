/**
 * How a threshold was chosen, in people's words, and the automatic rule itself. Pure (no
 * Node import): Review, Evaluate and the PDF all describe the threshold from here, so what
 * they say is the rule that api/threshold.ts applies.
 */
import type { ThresholdSource } from './contract';

/** The false-alarm share on the good evidence the automatic threshold aims at (scripts/threshold-rules.ts). */
export const AUTO_FALSE_ALARMS = 0.05;

export function pct(x: number | null): string {
  if (x === null) return '-';
  return `${(x * 100).toFixed(Number.isInteger(x * 100) ? 0 : 1)} %`;
}

const EVIDENCE = 'the good images the model did not train on, and the trained ones by their cross-validation scores';

/** The rule in force, short (Review's threshold line, Evaluate). */
export function ruleShort(source: ThresholdSource | null): string {
  if (!source) return 'no threshold set';
  switch (source.kind) {
    case 'value':
      return 'set by hand';
    case 'auto':
      return `automatic: at most ${pct(AUTO_FALSE_ALARMS)} false alarms`;
    case 'falseAlarmRate':
      return `target: at most ${pct(source.target)} false alarms`;
    case 'catchRate':
      return `target: at least ${pct(source.target)} of defects caught`;
  }
}

/** One sentence for people (reports, tooltips): the rule and the images it was set on. */
export function describeSource(source: ThresholdSource | null): string {
  if (!source) return 'no threshold set';
  switch (source.kind) {
    case 'value':
      return 'set by hand';
    case 'auto':
      return `automatic, set when the model was scored: at most ${pct(AUTO_FALSE_ALARMS)} of ${EVIDENCE} above it (the 90th percentile of all scores when no image is labelled good)`;
    case 'falseAlarmRate':
      return `from a target of at most ${pct(source.target)} false alarms on ${EVIDENCE}`;
    case 'catchRate':
      return `from a target of at least ${pct(source.target)} of known defects caught (on the same evidence)`;
  }
}

/** The target a rule amounts to, for the target box: the automatic rule is a false-alarm target. */
export function targetOf(source: ThresholdSource | null): { kind: 'falseAlarmRate' | 'catchRate'; rate: number } {
  if (source?.kind === 'catchRate') return { kind: 'catchRate', rate: source.target };
  if (source?.kind === 'falseAlarmRate') return { kind: 'falseAlarmRate', rate: source.target };
  return { kind: 'falseAlarmRate', rate: AUTO_FALSE_ALARMS };
}
