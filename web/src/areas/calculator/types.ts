/** One treatment in the interval chart. */
export interface IntervalRow {
  name: string
  expected: number
  low: number | null // null: the interval is open on that side (one-sided)
  high: number | null
  good: boolean | null // significant and better (true), worse (false), or neither (null)
}
