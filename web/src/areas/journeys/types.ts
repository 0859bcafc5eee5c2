// The journeys API's shapes (docs/api.md, "Journeys").
export interface JourneyStep {
  type: 'wait' | 'condition' | 'action'
  hours?: number
  minutes?: number
  seconds?: number
  event?: string
  performed?: boolean
  action?: 'webhook' | 'notify_owner' | 'set_property' | 'add_to_cohort'
  url?: string
  secret?: string
  secret_set?: boolean
  title?: string
  text?: string
  payload?: Record<string, unknown>
  channels?: number[]
  property?: string
  value?: string | number | boolean
  cohort?: number
}
export interface Lift {
  expected: number
  ci: [number, number]
  p_value: number
}
export interface Journey {
  id: number
  name: string
  description: string
  owner: string
  status: 'draft' | 'active' | 'paused' | 'ended'
  trigger: { type: 'event' | 'cohort' | 'schedule'; event?: string; cohort?: number; include_existing?: boolean; every_minutes?: number; at?: string }
  audience: { cohort: number } | null
  steps: JourneyStep[]
  limits: { quiet_hours: string; frequency_cap: { max: number; hours: number } | null; rate_per_minute: number; end_date: string }
  delivery: { max_attempts: number; backoff_seconds: number }
  holdout_percent: number
  goal: { event: string; within_days: number } | null
  lookback_hours: number
  entered: number
  holdout: number
  sent: number
  updated_at: string
  activated_at: string | null
}
export interface JourneyListItem {
  id: number
  name: string
  status: Journey['status']
  trigger: Journey['trigger']
  owner: string
  entered: number
  holdout: number
  sent: number
  lift: Lift | null
}
export interface StepCounts {
  index: number
  type: string
  action: string
  reached: number
  treated: number
  holdout: number
  passed: number
  exited: number
  held_out: number
  queued: number
  capped: number
  ended: number
  pending: number
  sent: number
  failed: number
  dead: number
  converted: number
}
export interface Group {
  persons: number
  converted: number
  rate: number | null
}
export interface Results {
  id: number
  status: string
  entered: number
  treated: number
  holdout: number
  sent: number
  failed: number
  dead: number
  pending: number
  converted: number | null
  goal: { event: string; within_days: number } | null
  steps: StepCounts[]
  comparison: { treated: Group; holdout: Group; lift: Lift | null; error?: string; confidence: number } | null
}
export interface DeadLetter {
  id: number
  distinct_id: string
  step: number
  idempotency_key: string
  action: string
  attempts: number
  http_status: number
  error: string
  created_at: string
  last_attempt_at: string | null
}
