#!/usr/bin/env python3
"""Times the insight queries of issue 11 against a running server holding dataset S
(docs/benchmarks.md "Insights"): the plain 5-step funnel as the yardstick, stickiness, a
trends formula with compare, and the other trends extensions, each warm (1 untimed run,
then the median of --runs server-side `took_ms`). Standard library only.

  bench/insights_bench.py --url http://127.0.0.1:8080 --key nss_... [--runs 5]
"""
import argparse
import json
import statistics
import urllib.request

FROM, TO = "2024-01-01", "2024-03-30"  # gen_events' 90 days (UTC)
MID = "2024-02-15"  # the second half, so that compare previous_period has data

FUNNEL = {"kind": "funnel", "window_seconds": 604800, "date_from": FROM, "date_to": TO,
          "steps": [{"event": e} for e in ("product_exposure", "product_click", "add_to_cart", "order", "pay")]}
RATIO = [{"event": "pay", "math": "dau"}, {"event": "app_launch", "math": "dau"}]

QUERIES = [
    ("funnel, 5 steps, 7-day window (yardstick)", FUNNEL),
    ("trends dau of $any (Q1)", {"kind": "trends", "date_from": FROM, "date_to": TO,
                                 "series": [{"event": "$any", "math": "dau"}]}),
    ("stickiness of app_launch, days", {"kind": "stickiness", "date_from": FROM, "date_to": TO,
                                        "series": [{"event": "app_launch"}]}),
    ("stickiness of app_launch and pay, weeks", {"kind": "stickiness", "date_from": FROM, "date_to": TO,
                                                 "interval": "week",
                                                 "series": [{"event": "app_launch"}, {"event": "pay"}]}),
    ("formula A / B * 100 with compare, 90 days", {"kind": "trends", "date_from": FROM, "date_to": TO,
                                                   "series": RATIO, "formula": "A / B * 100",
                                                   "compare": "previous_period"}),
    ("formula A / B * 100 with compare, 45 + 45 days", {"kind": "trends", "date_from": MID, "date_to": TO,
                                                        "series": RATIO, "formula": "A / B * 100",
                                                        "compare": "previous_period"}),
    ("formula by channel, display number", {"kind": "trends", "date_from": FROM, "date_to": TO, "series": RATIO,
                                            "formula": "A / B * 100", "breakdown": "channel",
                                            "display": "number"}),
    ("weekly_active + monthly_active of $any", {"kind": "trends", "date_from": FROM, "date_to": TO,
                                                "series": [{"event": "$any", "math": "weekly_active"},
                                                           {"event": "$any", "math": "monthly_active"}]}),
    ("p90_per_person of page_view", {"kind": "trends", "date_from": FROM, "date_to": TO,
                                     "series": [{"event": "page_view", "math": "p90_per_person"}]}),
    ("cumulative dau of pay", {"kind": "trends", "date_from": FROM, "date_to": TO, "cumulative": True,
                               "series": [{"event": "pay", "math": "dau"}]}),
    ("smoothing 7 of dau of $any", {"kind": "trends", "date_from": FROM, "date_to": TO, "smoothing": 7,
                                    "series": [{"event": "$any", "math": "dau"}]}),
]


def run(url, key, q):
    req = urllib.request.Request(url + "/api/v1/query", data=json.dumps(q).encode(),
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    base = None
    print(f"| Query | median ms | × funnel |\n|---|---:|---:|")
    for name, q in QUERIES:
        run(a.url, a.key, q)  # warm-up
        ms = statistics.median(run(a.url, a.key, q)["took_ms"] for _ in range(a.runs))
        base = base or ms
        print(f"| {name} | {ms:,.1f} | {ms / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
