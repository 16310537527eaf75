"""Retrieval curves (the paper's Figure 4) of one or more trained runs, on one figure.

    python -m uada.retrieval --workdirs=DIR_A,DIR_B --output=OUT [--names=source-only,UADA] \
        [--domain_source=demo_source] [--domain_target=demo_target] [--num_vectors=5000] \
        [--positions_per_image=10] [--seed=0] [--max_k=49]

`uada.analysis.retrieval.retrieval` does the work: for each run, the model of the workdir's latest
checkpoint computes `Z = R(X)` in inference mode on the validation splits of the source and target
domains (default: each run's own); `--positions_per_image` random positions are drawn per image,
up to `--num_vectors` per domain, and it counts for `k = 1..max_k` the source vectors among
each target vector's `k` nearest neighbours. Perfect alignment is `y = k / 2`.

Writes into `--output`:
- `retrieval.png`, `retrieval.pdf`: every run's curve and the perfect-alignment line;
- `retrieval.csv`: a column `k` and one column per run;
- `domain_accuracy.json` (also printed as a table): for runs with a domain classifier (UADA), the
  classifier's accuracy at the same positions, per semantic class of the position and overall.
"""

import os

import numpy as np
from absl import app, flags

from uada import config as config_lib
from uada.analysis import retrieval as retrieval_lib
from uada.runs import workdir as workdir_lib


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.retrieval`."""
    fv = flag_values
    flags.DEFINE_list("workdirs", None, "Comma-separated run directories.", flag_values=fv)
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.mark_flags_as_required(["workdirs", "output"], flag_values=fv)
    flags.DEFINE_list(
        "names", None, "Legend names, one per workdir; default: the folder names.", flag_values=fv
    )
    flags.DEFINE_enum(
        "domain_source", None, config_lib.DATASETS, "Source domain; default: each run's source.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_enum(
        "domain_target", None, config_lib.DATASETS, "Target domain; default: each run's target.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer("num_vectors", 5000, "Vectors per domain.", lower_bound=2, flag_values=fv)
    flags.DEFINE_integer(
        "positions_per_image", 10, "Random positions per image.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer("seed", 0, "Seed of the position draw.", flag_values=fv)
    flags.DEFINE_integer("max_k", 49, "Largest k.", lower_bound=1, flag_values=fv)
    flags.register_validator(
        "workdirs",
        lambda value: (
            value is None
            or all(os.path.isfile(os.path.join(w, workdir_lib.CONFIG_FILE)) for w in value)
        ),
        message="--workdirs must name run directories (each with a config.json).",
        flag_values=fv,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    curves, accuracy = retrieval_lib.retrieval(
        fv.workdirs,
        fv.output,
        names=fv.names,
        domain_source=fv.domain_source,
        domain_target=fv.domain_target,
        num_vectors=fv.num_vectors,
        positions_per_image=fv.positions_per_image,
        seed=fv.seed,
        max_k=fv.max_k,
    )
    k = np.array([1, 5, 10, 25, fv.max_k])
    k = k[k <= fv.max_k]
    print("\nSource vectors among the k nearest neighbours of a target vector (perfect: k/2)\n")
    print("| run | " + " | ".join(f"k={v}" for v in k) + " |")
    print("|---|" + "---:|" * len(k))
    for name, curve in curves.items():
        print(f"| {name} | " + " | ".join(f"{curve[v - 1]:.2f}" for v in k) + " |")
    if accuracy:
        print("\nDomain classifier accuracy per class (%)\n")
        print(retrieval_lib.accuracy_table(accuracy))
    print(f"\nWritten to {fv.output}: retrieval.png, retrieval.pdf, retrieval.csv, "
          "domain_accuracy.json")  # fmt: skip


if __name__ == "__main__":
    define_flags()
    app.run(main)
