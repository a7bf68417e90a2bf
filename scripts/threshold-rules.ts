/**
 * Compares ways of putting the out-of-fold evidence on the final model's scale, on the JSON
 * that scripts/threshold-loop.ts writes: for each, the automatic threshold (at most `rate` of
 * the good evidence above), what the evidence promises there (rates and 95 % Wilson
 * intervals) and what the final model then does on the images that stayed unlabelled.
 *
 *   npx tsx scripts/threshold-rules.ts /tmp/loop.json [--rates 0.05,0.1,0.15] [--picks in|out|defects]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { wilson, thresholdForFalseAlarms } from '../src-main/api/threshold';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rates: { type: 'string', default: '0.05,0.1,0.15' },
    only: { type: 'string' },
    /**
     * Images decided from the top of the previous queue: `in` the evidence, `out` of it, or out
     * for the defects only (`defects`: what api/threshold.ts queuePicks does).
     */
    picks: { type: 'string', default: 'defects' },
  },
});

interface Round {
  round: number;
  labelled: number[];
  weight: number;
  final: number[];
  folds: { trainNormalIds: number[]; scores: number[] }[];
  foldReference: { mean: number; std: number }[];
  oof: Record<string, { fold: number; total: number; z: number }>;
  auc: number | null;
}
const data = JSON.parse(readFileSync(positionals[0], 'utf8')) as { subset: string | number; rounds: Round[] }[];
const isDefect = (i: number) => i < 100;

function meanSd(xs: number[]) {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1);
  return { m, sd: Math.sqrt(v) || 1 };
}

/** Position of s among sorted xs as a fraction in [0, 1] (ties count half). */
function cdf(sorted: number[], s: number): number {
  let lo = 0;
  let eq = 0;
  for (const x of sorted) {
    if (x < s) lo++;
    else if (x === s) eq++;
  }
  return (lo + eq / 2) / sorted.length;
}
/** Value at fraction q of sorted xs, linear between order statistics (q = (i + 0.5) / n). */
function quantileAt(sorted: number[], q: number): number {
  const pos = q * sorted.length - 0.5;
  if (pos <= 0) return sorted[0] + (sorted[1] - sorted[0]) * pos; // linear beyond the ends
  const n = sorted.length;
  if (pos >= n - 1) return sorted[n - 1] + (sorted[n - 1] - sorted[n - 2]) * (pos - (n - 1));
  const i = Math.floor(pos);
  return sorted[i] + (sorted[i + 1] - sorted[i]) * (pos - i);
}

type Mapping = (r: Round, id: number) => number;

const mappings: Record<string, Mapping> = {
  /** As shipped: z against the fold's in-sample training normals, times the final model's in-sample spread. */
  'z-insample': (r, id) => {
    const trained = r.labelled.filter((i) => !isDefect(i)).map((i) => r.final[i]);
    const { m, sd } = meanSd(trained);
    return m + sd * r.oof[id].z;
  },
  /** Raw fold score, no mapping. */
  raw: (r, id) => r.oof[id].total,
  /** Quantile of the fold model's scores of the unlabelled images, read off the final model's. */
  'pool-quantile': (r, id) => {
    const pool = poolOf(r);
    const o = r.oof[id];
    const fs = pool.map((u) => r.folds[o.fold].scores[u]).sort((a, b) => a - b);
    const ff = pool.map((u) => r.final[u]).sort((a, b) => a - b);
    return quantileAt(ff, cdf(fs, o.total));
  },
  /** Least squares of the final model's scores of the unlabelled images on the fold model's (shipped: api/threshold.ts foldMappings). */
  'pool-linear': (r, id) => {
    const pool = poolOf(r);
    const o = r.oof[id];
    const x = pool.map((u) => r.folds[o.fold].scores[u]);
    const y = pool.map((u) => r.final[u]);
    const mx = meanSd(x).m;
    const my = meanSd(y).m;
    let sxy = 0;
    let sxx = 0;
    x.forEach((xi, k) => {
      sxy += (xi - mx) * (y[k] - my);
      sxx += (xi - mx) ** 2;
    });
    return my + (sxy / sxx) * (o.total - mx);
  },
};

const poolCache = new WeakMap<Round, number[]>();
function poolOf(r: Round): number[] {
  let p = poolCache.get(r);
  if (!p) {
    const lab = new Set(r.labelled);
    p = r.final.map((_, i) => i).filter((i) => !lab.has(i));
    poolCache.set(r, p);
  }
  return p;
}

const rates = values.rates!.split(',').map(Number);
const f = (x: number) => (100 * x).toFixed(1).padStart(5);
const iv = (w: [number, number] | null) => (w ? `${(100 * w[0]).toFixed(0)}-${(100 * w[1]).toFixed(0)}` : '-').padStart(6);
for (const rate of rates) {
  console.log(`\n== automatic threshold: at most ${rate * 100} % of the good evidence above ==`);
  for (const [name, map] of Object.entries(mappings)) {
    if (values.only && !values.only.split(',').includes(name)) continue;
    let inFa = 0;
    let inCatch = 0;
    let okFa = 0;
    let okCatch = 0;
    let n = 0;
    const lines: string[] = [];
    for (const s of data)
      for (const r of s.rounds) {
        // Queue picks: labelled from the top of the previous model's queue, not a random sample.
        const picked = new Set(r.round > 1 ? r.labelled.filter((i) => !s.rounds[r.round - 2].labelled.includes(i)) : []);
        const ids = Object.keys(r.oof)
          .map(Number)
          .filter((i) => !(picked.has(i) && (values.picks === 'out' || (values.picks === 'defects' && isDefect(i)))));
        const good = ids.filter((i) => !isDefect(i)).map((i) => map(r, i));
        const defect = ids.filter(isDefect).map((i) => map(r, i));
        const t = thresholdForFalseAlarms(good, rate)!;
        const kFa = good.filter((x) => x > t).length;
        const kC = defect.filter((x) => x > t).length;
        const wFa = wilson(kFa, good.length)!;
        const wC = wilson(kC, defect.length)!;
        const pool = poolOf(r);
        const pn = pool.filter((i) => !isDefect(i));
        const pd = pool.filter(isDefect);
        const fa = pn.filter((i) => r.final[i] > t).length / pn.length;
        const c = pd.filter((i) => r.final[i] > t).length / pd.length;
        const faIn = fa >= wFa[0] && fa <= wFa[1];
        const cIn = c >= wC[0] && c <= wC[1];
        n++;
        inFa += +faIn;
        inCatch += +cIn;
        okFa += +(fa <= 0.1);
        okCatch += +(c >= 0.7);
        lines.push(
          `  ${String(s.subset).padEnd(4)} r${r.round} w${r.weight}: promised FA ${f(kFa / good.length)} [${iv(wFa)}] catch ${f(kC / defect.length)} [${iv(wC)}] | real FA ${f(fa)}${faIn ? ' ' : '*'} catch ${f(c)}${cIn ? ' ' : '*'}`,
        );
      }
    console.log(
      `${name}: FA inside interval ${inFa}/${n}, catch inside ${inCatch}/${n}; real FA <= 10 % ${okFa}/${n}, catch >= 70 % ${okCatch}/${n}`,
    );
    for (const l of lines) console.log(l);
  }
}

// Held-out AUC (what the Models view and the PDF print) against the final model's real
// ranking of the images that stayed unlabelled.
import { aucRoc } from '../src-main/engine/metrics';
import { pooledAuc } from '../src-main/models/held-out';
console.log('\n== held-out AUC-ROC (out-of-fold, pooled on z; 95 % interval) vs the final model on the unlabelled images ==');
let inside = 0;
let evInside = 0;
let count = 0;
const real0 = (r: Round) => {
  const pool = poolOf(r);
  return aucRoc(pool.map((i) => r.final[i]), pool.map((i) => (isDefect(i) ? 1 : 0)));
};
for (const s of data)
  for (const r of s.rounds) {
    const oof = Object.fromEntries(
      Object.entries(r.oof).map(([id, o]) => [id, { label: isDefect(Number(id)) ? ('defect' as const) : ('good' as const), total: o.total, z: o.z }]),
    );
    const est = pooledAuc(oof)!;
    // Evaluate's AUC: the counted evidence (pool-linear, queue-picked defects left out), same interval.
    const prev = r.round > 1 ? new Set(s.rounds[r.round - 2].labelled) : null;
    const ids = Object.keys(r.oof)
      .map(Number)
      .filter((i) => !(prev && isDefect(i) && !prev.has(i)));
    const ev = pooledAuc(
      Object.fromEntries(
        ids.map((i) => [String(i), { label: isDefect(i) ? ('defect' as const) : ('good' as const), total: 0, z: mappings['pool-linear'](r, i) }]),
      ),
    )!;
    const mapped = ev.auc;
    const evOk = real0(r) >= ev.low && real0(r) <= ev.high;
    evInside += +evOk;
    const onTotal = aucRoc(
      Object.values(r.oof).map((o) => o.total),
      Object.keys(r.oof).map((id) => (isDefect(Number(id)) ? 1 : 0)),
    );
    const pool = poolOf(r);
    const real = aucRoc(pool.map((i) => r.final[i]), pool.map((i) => (isDefect(i) ? 1 : 0)));
    const ok = real >= est.low && real <= est.high;
    inside += +ok;
    count++;
    console.log(
      `  ${String(s.subset).padEnd(4)} r${r.round}: estimate ${est.auc.toFixed(3)} [${est.low.toFixed(3)}-${est.high.toFixed(3)}] (on totals ${onTotal.toFixed(3)}; counted evidence ${mapped.toFixed(3)} [${ev.low.toFixed(3)}-${ev.high.toFixed(3)}]${evOk ? '' : ' *'}) | real ${real.toFixed(3)}${ok ? '' : ' *'}`,
    );
  }
console.log(`real inside the interval: pooled on z ${inside}/${count}, counted evidence ${evInside}/${count}`);
