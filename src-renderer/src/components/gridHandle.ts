/** What VirtualGrid exposes to its parent through a template ref. */
export interface GridHandle {
  scrollToIndex(index: number): void;
  /** Columns currently laid out (exposed refs arrive unwrapped). */
  columns: number;
}
