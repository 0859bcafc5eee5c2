#!/usr/bin/env python3
"""The peer workload's CSV (user_id,ts,event,channel,platform,amount) as NDJSON in the format of
POST /api/v1/events, for the NDJSON import benchmark (docs/benchmarks.md, "Bulk import").
usage: bench/csv_to_ndjson.py /tmp/peerdata/events_S.csv /tmp/peerdata/events_S.ndjson
The output is generated on demand (1.2 GB for S), never committed."""
import csv
import json
import sys


def main(src, dst):
    with open(src, newline="") as f, open(dst, "w") as out:
        rows = csv.reader(f)
        header = next(rows)
        want = ["user_id", "ts", "event", "channel", "platform", "amount"]
        if header != want:
            sys.exit(f"{src}: expected the columns {','.join(want)}, got {','.join(header)}")
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for user, ts, event, channel, platform, amount in rows:
            amount_num = float(amount)
            out.write(dumps({
                "event": event,
                "distinct_id": user,
                "timestamp": int(ts) * 1000,
                "properties": {"channel": channel, "platform": platform,
                               "amount": int(amount_num) if amount_num.is_integer() else amount_num},
            }))
            out.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
