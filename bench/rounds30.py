#!/usr/bin/env python3
"""Derives the 30-event-name dataset of the long-funnel benchmark from a peer CSV.

The peer generator (gen_events.cpp) has ten event names, so a funnel of 30 distinct event
names cannot be asked of its data. This rewrites the five purchase events of Q2
(product_exposure, product_click, add_to_cart, order, pay): a person's n-th occurrence of
event E becomes E_rK with K = (n - 1) mod 6 + 1 ("purchase round" K). Every other column and
row is unchanged, so the 30-step funnel over rounds 1..6 of the five events (ns_bench
--only q2_30) reads exactly the rows and columns Q2 reads over the original data, each row
matching one step; the ratio of the two times is the cost of the step count alone.

usage: rounds30.py IN.csv OUT.csv
"""
import sys

STEP_EVENTS = ("product_exposure", "product_click", "add_to_cart", "order", "pay")
ROUNDS = 6


def main():
    src, dst = sys.argv[1], sys.argv[2]
    seen = {}  # (user, event) -> occurrences so far
    with open(src, newline="") as fin, open(dst, "w", newline="") as fout:
        fout.write(fin.readline())  # header: user_id,ts,event,...
        for line in fin:
            user, ts, event, rest = line.split(",", 3)
            if event in STEP_EVENTS:
                key = (user, event)
                n = seen.get(key, 0)
                seen[key] = n + 1
                line = f"{user},{ts},{event}_r{n % ROUNDS + 1},{rest}"
            fout.write(line)


if __name__ == "__main__":
    main()
