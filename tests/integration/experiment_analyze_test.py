#!/usr/bin/env python3
"""The experiment calculator's routes against a real server (docs/api.md, "Experiment
statistics"; formulas in docs/statistics.md): POST /api/v1/experiments/analyze answers
gbstats' published cases (frequentist, one-sided, sequential, Bayesian, CUPED ratio) to their
5 decimals over HTTP, agrees with a plain-Python Welch computation on raw samples, flags a
sample ratio mismatch, adjusts several treatments with Holm; POST /api/v1/experiments/power
answers GrowthBook's power table week by week; every bad field is a 400 naming it; a write
key is refused (403), no credentials 401, a viewer key allowed.

Usage: experiment_analyze_test.py /path/to/northstar. Standard library only.
"""

import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, check, check_eq, run_server_suite  # noqa: E402
from opsclient import create_project  # noqa: E402

S = {}
ANALYZE, POWER = "/api/v1/experiments/analyze", "/api/v1/experiments/power"
# gbstats' tests/frequentist/test_tests.py samples (control n 3407 or 3000, treatment n 3461).
A3407 = {"name": "control", "n": 3407, "sum": 1396.87, "sum_squares": 52377.9767}
A3000 = {"name": "control", "n": 3000, "sum": 1396.87, "sum_squares": 52377.9767}
B3461 = {"name": "new", "n": 3461, "sum": 2422.7, "sum_squares": 134698.29}


def r5(x):
    return None if x is None else round(x, 5)


def close5(actual, expected, what):
    check(actual is not None and round(actual, 5) == round(expected, 5), f"{what}: {actual} vs {expected}")


def setup(binary, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
    S["server"] = srv = Server(binary, data, os.path.join(tmp, "server.log"))
    srv.start()
    S["sec"] = Client(srv.port, "secret", key=keys["secret_key"])
    S["writer"] = Client(srv.port, "writer", key=keys["write_key"])
    S["anon"] = Client(srv.port, "anonymous")
    k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "viewer", "role": "viewer"}, 201)
    S["viewer"] = Client(srv.port, "viewer", key=k["key"])


def analyze(body, who="sec"):
    return S[who].ok("POST", ANALYZE, body)


def test_gbstats_cases_over_http():
    r = analyze({"metric": "mean", "variants": [A3407, B3461]})
    e = r["effects"][0]
    check_eq((r["method"], r["difference"], r["alternative"]), ("frequentist", "relative", "two_sided"), "defaults")
    close5(e["expected"], 0.70732, "expected")
    check_eq([r5(x) for x in e["ci"]], [-0.03526, 1.44989], "ci")
    close5(e["p_value"], 0.06191, "p_value")
    close5(e["standard_error"], 0.37879, "standard_error")
    check_eq((e["chance_to_win"], e["risk"]), (None, [None, None]), "no Bayesian numbers")
    check_eq(e["significant"], False, "significant")
    r = analyze({"metric": "mean", "difference": "absolute", "variants": [A3407, B3461]})
    check_eq([r5(x) for x in r["effects"][0]["ci"]], [0.04538, 0.53462], "absolute ci")
    close5(r["effects"][0]["p_value"], 0.02016, "absolute p")
    # One-sided: the open end is null.
    r = analyze({"metric": "mean", "alternative": "greater", "variants": [A3000, B3461]})
    e = r["effects"][0]
    check_eq((r5(e["ci"][0]), e["ci"][1]), (-0.04514, None), "greater ci")
    close5(e["p_value"], 0.06558262868467746, "greater p")
    # Sequential, tuning 1000 and the proportion case at the default 5000.
    e = analyze({"metric": "mean", "method": "sequential", "sequential_tuning": 1000,
                 "variants": [A3000, B3461]})["effects"][0]
    check_eq([r5(x) for x in e["ci"]] + [e["p_value"]], [-0.55844, 1.56516, 1], "sequential")
    e = analyze({"metric": "proportion", "method": "sequential", "variants": [
        {"n": 3000, "sum": 1396}, {"n": 3461, "sum": 2422}]})["effects"][0]
    check_eq([r5(x) for x in e["ci"]], [0.40098, 0.60675], "sequential proportion ci")
    # Bayesian binomial (tests/bayesian/test_tests.py).
    r = analyze({"metric": "proportion", "method": "bayesian", "variants": [{"n": 100, "sum": 49},
                                                                            {"n": 100, "sum": 51}]})
    e = r["effects"][0]
    check_eq((r5(e["expected"]), r5(e["chance_to_win"]), [r5(x) for x in e["risk"]], [r5(x) for x in e["ci"]]),
             (0.04082, 0.60918, [0.0814, 0.04058], [-0.24779, 0.32943]), "bayesian binomial")
    check_eq(e["p_value"], None, "no p-value under the Bayesian method")
    check_eq(r["variants"][1]["mean"], 0.51, "rate")
    # Informative prior.
    e = analyze({"metric": "mean", "method": "bayesian", "prior": {"mean": 0.1, "variance": 0.1}, "variants": [
        {"n": 10, "sum": 100, "sum_squares": 1002.25}, {"n": 10, "sum": 105, "sum_squares": 1111.5}]})["effects"][0]
    check_eq((r5(e["expected"]), r5(e["chance_to_win"])), (0.05063, 0.92315), "informative prior")
    # CUPED ratio (test_two_sided_ttest_test_runs_ratio_ra).
    def ratio(n, m, mss, d, dss, mp, mpss, dp, dpss, m_mp, d_dp, mp_dp, m_d, m_dp, mp_d):
        return {"n": n, "sum": m, "sum_squares": mss, "denominator_sum": d, "denominator_sum_squares": dss,
                "pre_sum": mp, "pre_sum_squares": mpss, "pre_denominator_sum": dp,
                "pre_denominator_sum_squares": dpss, "main_pre_sum_product": m_mp,
                "denominator_pre_denominator_sum_product": d_dp, "pre_pre_denominator_sum_product": mp_dp,
                "main_denominator_sum_product": m_d, "main_pre_denominator_sum_product": m_dp,
                "pre_denominator_sum_product": mp_d}
    e = analyze({"metric": "ratio", "variants": [
        ratio(100, 485.112236689623, 2715.484666118136, 679.9093275844917, 4939.424001640236, 192.59138069991536,
              460.076026390857, 290.1398399750233, 920.9461385038898, 1113.6215759318352, 2130.9404074446747,
              634.239482353647, 3602.146836776702, 1559.2878434944676, 1460.3181079276983),
        ratio(100, 514.7757826608777, 2994.897482705013, 705.4090874383759, 5291.36604146392, 206.94157227402536,
              514.2903702246757, 302.54389139107326, 994.4506208125663, 1237.0953021125997, 2292.081739775257,
              698.4173425817908, 3918.1561431600717, 1701.0287270040265, 1604.0759503266522)]})["effects"][0]
    check_eq((r5(e["expected"]), [r5(x) for x in e["ci"]], r5(e["p_value"])), (-0.0007, [-0.00841, 0.007], 0.85771),
             "CUPED ratio")
    check(e["cuped_theta"] not in (None, 0), f"theta: {e}")


def welch_from_samples(a, b):
    """Plain-Python two-pass means, variances and the absolute difference's standard error."""
    def moments(x):
        n = len(x)
        m = sum(x) / n
        return n, m, sum((v - m) ** 2 for v in x) / (n - 1)
    na, ma, va = moments(a)
    nb, mb, vb = moments(b)
    return mb - ma, math.sqrt(va / na + vb / nb)


def sums(x, name):
    return {"name": name, "n": len(x), "sum": sum(x), "sum_squares": sum(v * v for v in x)}


def test_raw_samples_agree_with_plain_python():
    rng = random.Random(14)
    for trial in range(20):
        a = [rng.gauss(10, 3) for _ in range(rng.randint(20, 400))]
        b = [rng.gauss(10.5, 4) for _ in range(rng.randint(20, 400))]
        diff, se = welch_from_samples(a, b)
        e = analyze({"metric": "mean", "difference": "absolute",
                     "variants": [sums(a, "a"), sums(b, "b")]})["effects"][0]
        check(abs(e["expected"] - diff) < 1e-9 and abs(e["standard_error"] - se) < 1e-9 * se,
              f"trial {trial}: {e} vs {diff}, {se}")
        # The Bayesian flat-prior chance to win is Phi(diff / se).
        e = analyze({"metric": "mean", "difference": "absolute", "method": "bayesian",
                     "variants": [sums(a, "a"), sums(b, "b")]})["effects"][0]
        ctw = 0.5 * math.erfc(-diff / se / math.sqrt(2))
        check(abs(e["chance_to_win"] - ctw) < 1e-9, f"trial {trial}: chance {e['chance_to_win']} vs {ctw}")


def test_srm_and_corrections():
    # 1,000 vs 1,200 planned 50/50: GrowthBook's case, p = 0.000020079, flagged.
    r = analyze({"metric": "proportion", "variants": [{"n": 1000, "sum": 100}, {"n": 1200, "sum": 130}]})
    check_eq((round(r["srm_p_value"], 9), r["srm_flagged"]), (0.000020079, True), "srm")
    chi2 = 2 * 100 ** 2 / 1100
    check(abs(r["srm_p_value"] - math.erfc(math.sqrt(chi2 / 2))) < 1e-12, "srm is chi-square with 1 df")
    # A 10% rollout with the planned weights is not a mismatch.
    r = analyze({"metric": "proportion", "traffic_weights": [9, 1],
                 "variants": [{"n": 900, "sum": 90}, {"n": 100, "sum": 12}]})
    check_eq((r["srm_p_value"], r["srm_flagged"]), (1, False), "planned weights")
    # Under 100 persons nothing is flagged however skewed.
    r = analyze({"metric": "proportion", "variants": [{"n": 10, "sum": 1}, {"n": 80, "sum": 9}]})
    check(r["srm_p_value"] < 0.001 and not r["srm_flagged"], f"small: {r}")
    # Three treatments with Holm: p-values adjusted in the published way, intervals not narrower.
    vs = [A3407, B3461, {"n": 3400, "sum": 1500, "sum_squares": 60000}, {"n": 3450, "sum": 2000, "sum_squares": 90000}]
    plain = analyze({"metric": "mean", "variants": vs})["effects"]
    holm = analyze({"metric": "mean", "correction": "holm", "variants": vs})["effects"]
    raw = [e["p_value"] for e in plain]
    order = sorted(range(3), key=lambda i: raw[i])
    expected, running = [0.0] * 3, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, raw[i] * (3 - k)))
        expected[i] = running
    for i in range(3):
        check(abs(holm[i]["p_value"] - expected[i]) < 1e-12, f"holm {i}: {holm[i]['p_value']} vs {expected[i]}")
        check_eq(holm[i]["p_value_unadjusted"], raw[i], "unadjusted kept")
        check(holm[i]["ci"][0] <= plain[i]["ci"][0] and holm[i]["ci"][1] >= plain[i]["ci"][1], "wider")


def test_power_table():
    # GrowthBook's power.test.ts: revenue (mean 0.1, variance 0.5, effect 30%) and a 10%
    # click-through rate (effect 5%), 4,500 users a week over 3 variations.
    r = S["sec"].ok("POST", POWER, {"mean": 0.1, "variance": 0.5, "mde": 0.3, "daily_persons": 4500 / 7,
                                    "variants": 3})
    want = [0.17053, 0.29389, 0.41122, 0.51749, 0.61037, 0.68938, 0.75513, 0.80886]
    check_eq([r5(w["power"]) for w in r["weeks"][:8]], want, "revenue power by week")
    check_eq([r5(w["mde"]) for w in r["weeks"][:3]], [1.26769, 0.71941, 0.54299], "revenue mde by week")
    check(4500 * 7 / 3 < r["persons_per_variant"] <= 4500 * 8 / 3, f"persons: {r}")
    check(49 < r["days"] <= 56 and r["achieved_power"] >= 0.8, f"days: {r}")
    check_eq(r["total_persons"], r["persons_per_variant"] * 3, "total")
    r = S["viewer"].ok("POST", POWER, {"metric": "proportion", "mean": 0.1, "mde": 0.05, "daily_persons": 4500 / 7,
                                       "variants": 3})
    check_eq([r5(w["power"]) for w in r["weeks"][:3]], [0.073, 0.0965, 0.1204], "ctr power by week")
    check_eq(r["variance"], 0.1 * 0.9, "a rate's variance")
    seq = S["sec"].ok("POST", POWER, {"metric": "proportion", "mean": 0.1, "mde": 0.05, "daily_persons": 4500 / 7,
                                      "variants": 3, "sequential_tuning": 5000})
    check_eq(r5(seq["weeks"][0]["power"]), 0.05936, "sequential power, week 1")
    check(seq["persons_per_variant"] > r["persons_per_variant"], "sequential needs more persons")
    r = S["sec"].ok("POST", POWER, {"mean": 10, "standard_deviation": 2, "mde": 0.05})
    check_eq((r["days"], r["weeks"], r["variants"], r["alpha"], r["power"]), (None, [], 2, 0.05, 0.8), "no traffic")


def test_validation_names_the_field():
    v2 = [A3407, B3461]
    cases = [
        (ANALYZE, {"variants": v2}, "metric"),
        (ANALYZE, {"metric": "median", "variants": v2}, "metric"),
        (ANALYZE, {"metric": "mean", "method": "magic", "variants": v2}, "method"),
        (ANALYZE, {"metric": "mean", "alternative": "up", "variants": v2}, "alternative"),
        (ANALYZE, {"metric": "mean", "correction": "fdr", "variants": v2}, "correction"),
        (ANALYZE, {"metric": "mean", "alpha": 1.5, "variants": v2}, "alpha"),
        (ANALYZE, {"metric": "mean", "alpha": "0.05", "variants": v2}, "alpha"),
        (ANALYZE, {"metric": "mean", "method": "sequential", "sequential_tuning": 0, "variants": v2},
         "sequential_tuning"),
        (ANALYZE, {"metric": "mean", "method": "bayesian", "prior": {"variance": 0}, "variants": v2},
         "prior.variance"),
        (ANALYZE, {"metric": "mean", "prior": {"sd": 1}, "variants": v2}, "prior.sd"),
        (ANALYZE, {"metric": "mean", "traffic_weights": ["a", 1], "variants": v2}, "traffic_weights[0]"),
        (ANALYZE, {"metric": "mean", "traffic_weights": [1], "variants": v2}, "traffic_weights"),
        (ANALYZE, {"metric": "mean", "variants": [A3407]}, "variants"),
        (ANALYZE, {"metric": "mean", "variants": [A3407, {"sum": 1, "sum_squares": 1}]}, "variants[1].n"),
        (ANALYZE, {"metric": "mean", "variants": [A3407, dict(B3461, n=-1)]}, "variants[1].n"),
        (ANALYZE, {"metric": "mean", "variants": [A3407, {"n": 10, "sum": 10}]}, "variants[1].sum_squares"),
        (ANALYZE, {"metric": "mean", "variants": [A3407, dict(B3461, sum_squares=1)]}, "variants[1].sum_squares"),
        (ANALYZE, {"metric": "proportion", "variants": [{"n": 10, "sum": 11}, {"n": 10, "sum": 1}]},
         "variants[0].sum"),
        (ANALYZE, {"metric": "ratio", "variants": v2}, "variants[0].denominator_sum"),
        (ANALYZE, {"metric": "mean", "variants": [dict(A3407, pre_sum=1, pre_sum_squares=1), B3461]},
         "variants[1].pre_sum"),
        (ANALYZE, {"metric": "mean", "variants": [A3407, dict(B3461, nn=1)]}, "variants[1].nn"),
        (ANALYZE, {"metric": "mean", "variants": v2, "extra": 1}, "extra"),
        (POWER, {"variance": 1, "mde": 0.1}, "mean"),
        (POWER, {"mean": 1, "mde": 0.1}, "variance"),
        (POWER, {"mean": 1, "variance": 1}, "mde"),
        (POWER, {"mean": 1, "variance": 1, "mde": -0.1}, "mde"),
        (POWER, {"mean": 1, "variance": 1, "mde": 0.1, "power": 1.2}, "power"),
        (POWER, {"mean": 1, "variance": 1, "mde": 0.1, "variants": 1}, "variants"),
        (POWER, {"mean": 1, "variance": 1, "mde": 0.1, "daily_persons": -5}, "daily_persons"),
        (POWER, {"metric": "proportion", "mean": 1.5, "mde": 0.1}, "mean"),
        (POWER, {"metric": "proportion", "mean": 0.5, "variance": 0.25, "mde": 0.1}, "variance"),
    ]
    for path, body, field in cases:
        err = S["sec"].err("POST", path, body)
        check_eq(err.get("field"), field, f"{path} {body}: {err}")
        check(err["message"].startswith(field), f"message names the field: {err}")
    # Zero variance is an answer with the reason, not a 400.
    e = analyze({"metric": "proportion", "variants": [{"n": 100, "sum": 0}, {"n": 100, "sum": 0}]})["effects"][0]
    check_eq((e["ok"], e["error"], e["expected"], e["ci"]), (False, "ZERO_NEGATIVE_VARIANCE", None, [None, None]),
             "zero variance")


def test_roles():
    body = {"metric": "mean", "variants": [A3407, B3461]}
    S["viewer"].ok("POST", ANALYZE, body)
    S["writer"].err("POST", ANALYZE, body, expect=403)
    S["anon"].err("POST", ANALYZE, body, expect=401)
    S["writer"].err("POST", POWER, {"mean": 1, "variance": 1, "mde": 0.1}, expect=403)
    check_eq(S["sec"].req("GET", ANALYZE).status, 404, "GET is not a route")


def main():
    return run_server_suite(S, "ns-expstats-", setup, (test_gbstats_cases_over_http,
                            test_raw_samples_agree_with_plain_python, test_srm_and_corrections, test_power_table,
                            test_validation_names_the_field, test_roles))


if __name__ == "__main__":
    sys.exit(main())
