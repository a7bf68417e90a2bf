/** Data-set level types shared by adapters, splits, the CLI and the app. */

/** 0 = normal (good), 1 = anomaly (defect). */
export type BinaryLabel = 0 | 1;

/** Name used for the class of normal images. */
export const NORMAL_CLASS = 'good';

export interface DatasetItem {
  /** Absolute path of the image file. */
  path: string;
  label: BinaryLabel;
  /** Anomaly class name for anomalies ("crack", "mono", "hemorrhage"); NORMAL_CLASS for normals. */
  cls: string;
  /**
   * Pixel mask of the defect (white = defect), for localisation metrics only: nothing that
   * trains or scores reads it. Absent on a normal image means "no defect pixels".
   */
  mask?: string;
}

export interface Dataset {
  /** Short name ("headct", "elpv", "mvtec:bottle"...). */
  name: string;
  /** Folder the data set was read from. */
  root: string;
  items: DatasetItem[];
  /** Distinct anomaly classes, sorted. */
  anomalyClasses: string[];
  /** Set when the layout fixes its own normal train/test split (MVTec AD). */
  fixedSplit?: { trainNormals: DatasetItem[]; testNormals: DatasetItem[] };
  /** Files that were listed but skipped, each with its reason. */
  warnings: string[];
}

export type Setting = 'general' | 'hard';

/** A protocol split of dra.md: what trains, what tests. */
export interface ProtocolSplit {
  setting: Setting;
  shots: number;
  seed: number;
  /** Hard setting: the one anomaly class whose images are labelled (and absent from test). */
  knownClass?: string;
  trainNormals: DatasetItem[];
  trainAnomalies: DatasetItem[];
  test: DatasetItem[];
}

/** An 8-bit RGB image, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array; // length width*height*3
}
