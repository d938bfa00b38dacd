"""How far the default ``--precision mixed`` is from ``--precision float64``, per figure type, on real models.

Runs every model of the shared reference manifest (``--shared``, default ``../shared`` beside the
repository) on ITEMS items of its data set, prepared with the manifest's recipe, once per precision,
and prints per model and overall the largest difference of each figure type:

- layer S and G means (activity-weighted, unweighted, centred), network G_hidden / G_final / G_total;
- unit S and G (and the classifier's centred ones);
- relative differences |mixed - float64| / |float64|, for units over the units with |float64| >= FLOOR
  (a relative difference of a figure near 0 says nothing), and the largest absolute difference
  over all units; plus the number of units that are defined in one run and undefined in the other.

    python benchmarks/precision.py [--items 2000] [--only NAME,...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LAYER_FIGS = ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "S_mean_centred", "G_mean_centred")
NETWORK_FIGS = ("G_hidden", "G_final", "G_total")
UNIT_FIGS = ("unit_S", "unit_G", "unit_S_centred", "unit_G_centred")
FLOOR = 1e-3


def rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return abs(a - b) / abs(b)


def compare(mixed, exact) -> dict:
    """The largest differences per figure type between two reports of the same model and data."""
    out: dict = {}

    def keep(key: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            out[key] = max(out.get(key, 0.0), value)

    for Lm, Le in zip(mixed.layers, exact.layers):
        for f in LAYER_FIGS:
            keep(f"layer {f} rel", rel(Lm[f], Le[f]))
            if Lm[f] is not None and Le[f] is not None:
                keep(f"layer {f} abs", abs(Lm[f] - Le[f]))
        for f in UNIT_FIGS:
            um, ue = getattr(Lm, f), getattr(Le, f)
            if um is None or ue is None:
                continue
            both = np.isfinite(um) & np.isfinite(ue)
            out["units switching defined/undefined"] = out.get("units switching defined/undefined", 0) + int(
                np.count_nonzero(np.isfinite(um) != np.isfinite(ue)))
            if both.any():
                d = np.abs(um[both] - ue[both])
                keep(f"{f} abs", float(d.max()))
                big = np.abs(ue[both]) >= FLOOR
                if big.any():
                    keep(f"{f} rel", float((d[big] / np.abs(ue[both][big])).max()))
    for f in NETWORK_FIGS:
        keep(f"network {f} rel", rel(mixed.network[f], exact.network[f]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--only", default=None, help="comma-separated short names")
    ap.add_argument("--json", default=None, help="write the per-model results here")
    args = ap.parse_args()
    os.environ["SNR_SHARED"] = args.shared
    sys.path.insert(0, str(REPO / "tests"))
    import snrcli
    from shared_assets import prepared_inputs   # the manifest's recipes, as the tests use them
    from snrcli.errors import SnrError

    entries = json.loads((Path(args.shared) / "models" / "manifest.json").read_text())["models"]
    if args.only:
        wanted = set(args.only.split(","))
        entries = [e for e in entries if e["short_name"] in wanted]
    results, overall = {}, {}
    for e in entries:
        name = e["short_name"]
        data = prepared_inputs(e, args.items)
        model = str(Path(args.shared) / e["file"])
        output = e["preprocessing_params"].get("output")
        try:
            t0 = time.perf_counter()
            mixed = snrcli.analyze(model, data, output=output, precision="mixed")
            t1 = time.perf_counter()
            exact = snrcli.analyze(model, data, output=output, precision="float64")
            t2 = time.perf_counter()
        except SnrError as err:
            print(f"{name}: skipped ({err})", flush=True)
            continue
        r = compare(mixed, exact)
        r["items"] = mixed.data["samples"]
        r["seconds mixed, float64"] = [round(t1 - t0, 2), round(t2 - t1, 2)]
        results[name] = r
        for k, v in r.items():
            if isinstance(v, (int, float)):
                overall[k] = max(overall.get(k, 0), v)
        print(f"{name}: items {r['items']}, layer G rel {r.get('layer G_mean rel', 0):.2e}, "
              f"unit G rel {r.get('unit_G rel', 0):.2e}, unit S rel {r.get('unit_S rel', 0):.2e}, "
              f"{r['seconds mixed, float64'][0]:.1f} s / {r['seconds mixed, float64'][1]:.1f} s", flush=True)
    print(f"\nlargest difference over {len(results)} models ({args.items} items each; unit relative "
          f"differences over units with |float64 figure| >= {FLOOR:g}):")
    for k in sorted(overall):
        if k != "items":
            print(f"  {k:40s} {overall[k]:.3g}")
    if args.json:
        Path(args.json).write_text(json.dumps({"items": args.items, "models": results, "overall": overall},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
