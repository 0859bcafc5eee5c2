// The shapes of /api/v1/experiments (docs/experiments.md).

export type MetricType = 'funnel' | 'mean' | 'ratio' | 'retention'
export type Role = 'primary' | 'secondary' | 'guardrail'

export interface ValueSpec {
  event: string
  math: 'count' | 'sum'
  property?: string
}

export interface Metric {
  name: string
  type: MetricType
  steps?: string[]
  event?: string
  math?: 'count' | 'sum'
  property?: string
  numerator?: ValueSpec
  denominator?: ValueSpec
  day?: number
  window_hours?: number
}

export interface Analysis {
  method: 'frequentist' | 'sequential' | 'bayesian'
  difference: 'relative' | 'absolute'
  alternative: 'two_sided' | 'greater' | 'less'
  alpha: number
  correction: 'none' | 'holm' | 'bonferroni'
  sequential_tuning: number
  prior: { proper: boolean; mean: number; variance: number }
  cuped_days: number
  winsorize_percentile: number
}

export interface Experiment {
  id: number
  name: string
  hypothesis: string
  owner: string
  description: string
  flag_key: string
  variants: { key: string; weight: number }[]
  start_date: string | null
  end_date: string | null
  status: 'draft' | 'running' | 'stopped'
  primary_metrics: Metric[]
  secondary_metrics: Metric[]
  guardrail_metrics: Metric[]
  minimum_detectable_effect: number
  power: number
  analysis: Analysis
  scenario_id: number | null
}

export interface Effect {
  variant: string
  ok: boolean
  error?: string
  expected: number | null
  ci: [number | null, number | null]
  p_value: number | null
  chance_to_win: number | null
  risk: [number | null, number | null]
}

export interface MetricResult extends Metric {
  role: Role
  kind: 'proportion' | 'mean' | 'ratio'
  error?: string
  variants: { key: string; n: number; sum: number; mean?: number | null; rate?: number | null }[]
  effects?: Effect[]
}

export interface Results {
  experiment_id: number
  date_from: string
  date_to: string
  variants: { key: string; weight: number; exposed: number }[]
  exposures: number
  multiple_exposures: number
  srm_p_value: number | null
  srm_flagged: boolean
  srm_checked: boolean
  exposures_by_day: { dates: string[]; variants: { key: string; counts: number[] }[] }
  analysis: Analysis
  metrics: MetricResult[]
  power: null | {
    metric: string
    minimum_detectable_effect: number
    days_elapsed: number
    persons_per_variant?: number | null
    days_needed?: number | null
    days_remaining?: number | null
    error?: string
  }
}
