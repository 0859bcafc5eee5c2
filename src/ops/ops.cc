// Placeholder translation unit of the operations layer (scenarios, KPIs, alerts, ...).
namespace ns::ops {}
