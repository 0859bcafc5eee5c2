// Shapes of the server's answers that the console reads (docs/ops-api.md, docs/queries.md).
// Only the fields used here are typed; the server may add more.

export type Role = 'viewer' | 'operator' | 'admin'
export type Light = 'green' | 'yellow' | 'red' | null

export interface Membership {
  project: string
  role: Role
}
export interface Me {
  actor: string
  user_id: number
  project: string
  role: Role
  projects: Membership[]
}
export interface LoginAnswer {
  user_id: number
  csrf_token: string
  projects: Membership[]
  expires_at: number
}
export interface ProjectInfo {
  name: string
  timezone: string
  write_key?: string
  event_names: string[]
  stats?: Record<string, number>
}

export interface Forecast {
  projected: number | null
  lower: number | null
  upper: number | null
  interval: number | null
  prob_reach_target: number | null
  days_observed?: number
  days_remaining?: number
  method?: string
  summary?: string
  period_end?: string
}
export interface KpiHistoryPoint {
  taken_at: number
  as_of: string
  actual: number | null
  target: number | null
  achievement_rate: number | null
  light: Light
}
export interface Kpi {
  id: number
  name: string
  scenario_id: number | null
  owner?: string
  unit?: string
  target: number | null
  direction: 'higher' | 'lower'
  period: { type?: string; from?: string; to?: string }
  as_of?: string
  actual: number | null
  achievement_rate: number | null
  light: Light
  forecast: Forecast | null
  reason?: string
  auto_reason?: string
  reduce?: Record<string, unknown>
  query?: { kind?: string }
  daily?: { date: string; value: number | null }[]
  history?: KpiHistoryPoint[]
  numerator?: number
  denominator?: number
}

export interface RootCause {
  hint?: string
  top_contributors?: { dimension: string; value: string; contribution: number; share: number }[]
}
export interface Alert {
  id: number
  rule_id: number
  kpi_id: number
  state: 'firing' | 'acknowledged' | 'resolved'
  fired_at: number
  last_seen_at: number
  acked_at: number | null
  acked_by: string | null
  resolved_at: number | null
  message: string
  detail?: { type?: string; kpi_name?: string; root_cause?: RootCause }
}

export type ScenarioStatus = 'draft' | 'active' | 'paused' | 'done' | 'cancelled'
export type ActionStatus = 'not_started' | 'in_progress' | 'done' | 'delayed' | 'cancelled'
export const ACTION_STATUSES: ActionStatus[] = ['not_started', 'in_progress', 'delayed', 'done', 'cancelled']

export interface Action {
  id: number
  scenario_id?: number
  action: string
  strategy?: string
  owner?: string
  start_date?: string | null
  due_date?: string | null
  status: ActionStatus
  depends_on?: number[]
  delivery_standard?: string
  resources?: { budget?: number; currency?: string; engineer_days?: number; channels?: string[]; note?: string }
  progress?: { date: string; note: string }[]
}
export interface Scenario {
  id: number
  name: string
  business_module?: string
  goal?: unknown
  key_user_group?: unknown
  // The named cohort now (the server's, never stored): name and size, or deleted.
  key_user_group_cohort?: { id: number; name: string | null; size?: number | null; deleted?: boolean } | null
  pain_points?: unknown
  success_criteria?: unknown[]
  owner?: string
  period?: { from: string; to: string } | null
  status: ScenarioStatus
  action_counts?: Partial<Record<ActionStatus, number>>
  actions?: Action[]
  created_at?: number
  updated_at?: number
}
export interface GanttTask {
  id: number
  action: string
  owner: string
  status: ActionStatus
  start: string
  due: string
  depends_on: number[]
  earliest_start: string
  earliest_finish: string
  slack_days: number
  critical: boolean
  schedule_slip_days: number
}
export interface Gantt {
  scenario_id: number
  finish: string | null
  critical_path: number[]
  tasks: GanttTask[]
}
export interface MonitoringRow {
  kpi_id: number
  scenario: string
  kpi: string
  target: number | null
  actual: number | null
  achievement_rate: number | null
  light: Light
  reason: string
  auto_reason: string
  owner: string
  updated_at: number | null
  forecast?: Forecast | null
}
export interface Evaluation {
  scenario_id: number
  period: { from: string; to: string } | null
  owner: string
  kpis: { kpi_id: number; name: string; target: number | null; actual: number | null; achievement_rate: number | null; light: Light; period?: { from: string; to: string } }[]
  actions: { total: number; done: number; late: number; cancelled: number; open: number }
  what_worked: string
  problems: string
  next_measures: string
  status: 'draft' | 'final'
}

export interface TrendsSeries {
  label: string
  event: string
  math: string
  breakdown_value: string | null
  dates: string[]
  values: (number | null)[]
}
export interface TrendsAnswer {
  kind: 'trends'
  timezone: string
  date_from: string
  date_to: string
  series: TrendsSeries[]
  took_ms?: number
}

export interface AlertRule {
  id: number
  kpi_id: number
  name: string
  type: 'below_target' | 'change' | 'anomaly'
  threshold_pct: number
  threshold: number
  compare: 'dod' | 'wow'
  channels: number[]
  cooldown_minutes: number
  created_at: number
}
export interface Channel {
  id: number
  name: string
  kind: string
  url: string
  secret_set: boolean
  created_at: number
}
export interface Delivery {
  id: number
  channel_id: number
  channel: string
  at: number
  subject: string
  ok: boolean
  attempts: number
  http_status: number
  error: string
}
export interface TestDelivery {
  ok: boolean
  attempts: number
  http_status: number
  error: string
}
export interface ApiKey {
  id: number
  name: string
  role: Role
  created_at: number
  revoked: boolean
}
export interface User {
  id: number
  email: string
  name: string
  role: Role
  created_at: number
}
export interface AuditEntry {
  id: number
  at: number
  actor: string
  action: string
  entity: string
  entity_id: number | null
  before: unknown
  after: unknown
}
export interface PersonRow {
  distinct_id: string
  event_count: number
  first_seen: string
  last_seen: string
  lifecycle: string
  properties: Record<string, unknown>
}
export interface PersonList {
  persons: PersonRow[]
  total: number
  next: string | null
}
export interface Person {
  distinct_id: string
  display_id: string
  distinct_ids: string[]
  properties: Record<string, unknown>
  first_seen: string | null
  last_seen: string | null
  event_count: number
  lifecycle: string
  rfm: { recency_days: number; frequency: number; monetary: number; r: number; f: number; m: number; segment: string } | null
  tiers: Record<string, string>
  base_tags: Record<string, string>
  tags: string[]
  cohorts: number[]
}
export interface PersonEvent {
  distinct_id: string
  event: string
  timestamp: string
  properties: Record<string, unknown>
}
