"""Pairing quality on the two labelled splits the repo carries: `tuning` (datagen/assets/pairs_labelled, the one the
demo's pairing settings were chosen on) and `held-out` (datagen/assets/pairs_heldout: the same kinds of relation made
from other photos, never tuned on). The demo recipe's pairing (two-pass union-find) against its pass-1-only peer (the
same links without the pass-2 re-check), optionally a SigLIP run when weights are at hand. Prints pair precision,
group recall and pair recall per split; the held-out figures are the ones to quote.

    python bench/bench_pairing_quality.py [--split tuning|held-out|both] [--executor local|ray] [--siglip hf-hub:...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402

from datagen import schema  # noqa: E402
from datagen.operator import Role  # noqa: E402
from datagen.pairing.quality import SPLITS, evaluate, read_labels  # noqa: E402
from pipelines import load_recipe, run  # noqa: E402
from pipelines.catalog import OPERATORS  # noqa: E402

PASS1_ONLY = [
    "pairing.routes.general_editing.score=none",
    "pairing.routes.general_editing.band.low=-1.0",
    "pairing.routes.general_editing.band.high=2.0",
    "pairing.routes.reference_generation.enabled=false",
]


def pairing_run(out: Path, executor: str, extra: list[str], folder: Path = SPLITS["held-out"]) -> dict:
    overrides = [
        f"input.path={folder}",
        f"output.dir={out}",
        f"runtime.executor={executor}",
        "runtime.progress=false",
        "instructions.methods=[template]",
        *extra,
    ]
    recipe = load_recipe("configs/demo.yaml", overrides)
    for name, cfg in recipe.operators.items():
        if OPERATORS[name].role is not Role.FEATURES:
            cfg.enabled = False  # pairing only: the images job is off
    run(recipe, progress=False)
    rows = pq.read_table(out / schema.PAIRS_FILE, columns=["uri_a", "uri_b"]).to_pylist()
    result = evaluate([(r["uri_a"], r["uri_b"]) for r in rows], read_labels(folder))
    result["summary"] = json.loads((out / "_pairing" / "summary.json").read_text())
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split", default="both", choices=[*SPLITS, "both"])
    ap.add_argument("--executor", default="local", choices=["local", "ray"])
    ap.add_argument("--siglip", default=None, help="SigLIP weights (hub id, file or local-dir:) to add a SigLIP row")
    ap.add_argument("--siglip-model", default="ViT-SO400M-14-SigLIP-384")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="extra recipe overrides for every variant (tuning split only, please)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_pairing_quality_"))
    variants = [
        ("demo recipe: MobileNetV2 + two-pass", []),
        ("peer: MobileNetV2, pass 1 only", PASS1_ONLY),
        ("classical + two-pass", ["pairing.encoder=classical_features"]),
        ("peer: classical, pass 1 only", ["pairing.encoder=classical_features", *PASS1_ONLY]),
    ]
    if args.siglip:
        variants.append(
            (
                "SigLIP + two-pass",
                [
                    "pairing.encoder=siglip_features",
                    f"operators.siglip_features.pretrained={args.siglip}",
                    f"operators.siglip_features.model={args.siglip_model}",
                ],
            )
        )
    for split in SPLITS if args.split == "both" else [args.split]:
        folder = SPLITS[split]
        labels = read_labels(folder)
        print(
            f"{split} split ({folder.name}): {len(labels)} photos, "
            f"{len({r['group'] for r in labels.values() if r['group']})} groups of related views\n"
        )
        print(f"{'variant':<36} {'pairs':>5} {'right':>5} {'precision':>9} {'group recall':>12} {'pair recall':>11}")
        results = []
        for i, (name, extra) in enumerate(variants):
            r = pairing_run(tmp / f"{split}-run{i}", args.executor, [*extra, *args.set], folder)
            results.append((name, r))
            print(
                f"{name:<36} {r['pairs']:>5} {r['right']:>5} {r['precision']:>9.2f} "
                f"{r['groups_covered']:>5}/{r['groups']:<6} {r['pair_recall']:>11.2f}"
            )
        print()
        for name, r in results:
            kinds = ", ".join(f"{k} {v['covered']}/{v['groups']}" for k, v in sorted(r["per_kind"].items()))
            print(f"{name}: groups covered by kind: {kinds}")
            if r["missed_groups"]:
                print(f"  missed groups: {', '.join(r['missed_groups'])}")
            if r["wrong_pairs"]:
                print(
                    f"  wrong pairs: {', '.join(f'{a}~{b}' for a, b in r['wrong_pairs'][:8])}"
                    + (" ..." if len(r["wrong_pairs"]) > 8 else "")
                )
        print()
    print(f"\noutputs under {tmp}")


if __name__ == "__main__":
    main()
