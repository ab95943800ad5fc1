"""Compare every number (and string) of two JSON reports: exact, or |diff| < 1e-9 for floats.

MLflow keys were renamed to the `<stage>/<name>` scheme; RENAMES maps the old key prefixes to the
new ones before comparing, so a renamed key is compared with its old self, not reported missing
(issue 10: evaluation_report and localisation_report before and after the experiment/ refactor).

Usage: python tools/compare_reports.py BEFORE.json AFTER.json [BEFORE2.json AFTER2.json ...]
"""

import json
import math
import sys

RENAMES = [
    ("eval/", "evaluate/"),
    ("loc/", "evaluate/localisation/"),
    ("eval.threshold_rule", "evaluate.threshold_rule"),
    ("loc.rule", "evaluate.localisation_rule"),
    ("loc.degraded", "evaluate.degraded"),
]


def rename(key):
    for old, new in RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        a = {rename(k): v for k, v in a.items()}
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out["structure"].append(f"{path}/{k}: only in {'before' if k in a else 'after'}")
            else:
                walk(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out["structure"].append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        out["numbers"] += 1
        if a != b and not (math.isnan(a) and math.isnan(b)):
            d = abs(a - b)
            (out["close"] if d < 1e-9 else out["differ"]).append(
                f"{path}: {a!r} vs {b!r} (|d|={d:.3g})"
            )
    else:
        out["other"] += 1
        if a != b:
            out["differ"].append(f"{path}: {a!r} vs {b!r}")


for before, after in zip(sys.argv[1::2], sys.argv[2::2]):
    out = {"numbers": 0, "other": 0, "close": [], "differ": [], "structure": []}
    walk(json.load(open(before)), json.load(open(after)), "", out)
    sys.stdout.write(f"{before}\n  vs {after}\n")
    sys.stdout.write(
        f"  {out['numbers']} numbers, {out['other']} strings/bools/nulls compared; "
        f"exactly equal except {len(out['close'])} within 1e-9; "
        f"{len(out['differ'])} differ; {len(out['structure'])} structural differences\n"
    )
    for line in (out["differ"] + out["structure"])[:30]:
        sys.stdout.write(f"    {line}\n")
