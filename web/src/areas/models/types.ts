// The person API's "churn" (GET /api/v1/persons/{id}; docs/models.md).
export interface Contribution { feature: string; contribution: number }
export interface PersonChurn { risk: number; decile: number; as_of: string; horizon_days: number; top_features: Contribution[] }
