"""Retrieval curves (the paper's Figure 4) of one or more trained runs, on one figure.

    python -m uada.retrieval --workdirs=DIR_A,DIR_B --output=OUT [--names=source-only,UADA] \
        [--domain_source=demo_source] [--domain_target=demo_target] [--num_vectors=5000] \
        [--positions_per_image=10] [--seed=0] [--max_k=49]

`uada.analysis.retrieval_curve.retrieval` does the work: for each run, the model of the workdir's
latest checkpoint computes `Z = R(X)` in inference mode on the validation splits of the source and
target domains (default: each run's own); `--positions_per_image` random positions are drawn per
image, up to `--num_vectors` per domain, and it counts for `k = 1..max_k` the source vectors
among each target vector's `k` nearest neighbours. Perfect alignment is `y = k / 2`.

Writes into `--output`:
- `retrieval.png`, `retrieval.pdf`: every run's curve and the perfect-alignment line;
- `retrieval.csv`: a column `k` and one column per run;
- `domain_accuracy.json` (also printed as a table): for runs with a domain classifier (UADA), the
  classifier's accuracy at the same positions, per semantic class of the position and overall.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

import numpy as np
from absl import app, flags

from uada import command_errors
from uada import flags as uada_flags
from uada.analysis import retrieval_curve


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    curves, accuracy = retrieval_curve.retrieval(
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
        print(retrieval_curve.accuracy_table(accuracy))
    print(f"\nWritten to {fv.output}: retrieval.png, retrieval.pdf, retrieval.csv, "
          "domain_accuracy.json")  # fmt: skip


if __name__ == "__main__":
    uada_flags.define_retrieval_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    errors = (*command_errors.CHECKPOINT_ERRORS, *command_errors.DATA_ERRORS)
    with command_errors.reported(*errors):  # a few lines, exit status 1
        app.run(main)
