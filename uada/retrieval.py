"""Retrieval curves (the paper's Figure 4) of one or more trained runs, on one figure.

    python -m uada.retrieval --workdirs=DIR_A,DIR_B --output=OUT [--names=source-only,UADA] \
        [--domain_source=demo_source] [--domain_target=demo_target] [--num_vectors=5000] \
        [--positions_per_image=10] [--seed=0] [--max_k=49]

For each run, the model of the workdir's latest checkpoint (`uada.train_lib.load_model`) computes
`Z = R(X)` in inference mode on the validation splits of the source and target domains (default:
each run's own), and `uada.analysis.retrieval` draws `--positions_per_image` random positions per
image, up to `--num_vectors` per domain, and counts for `k = 1..max_k` the source vectors among
each target vector's `k` nearest neighbours. Perfect alignment is `y = k / 2`.

Writes into `--output`:
- `retrieval.png`, `retrieval.pdf`: every run's curve and the perfect-alignment line;
- `retrieval.csv`: a column `k` and one column per run;
- `domain_accuracy.json` (also printed as a table): for runs with a domain classifier (UADA), the
  classifier's accuracy at the same positions, per semantic class of the position and overall.
"""

import csv
import json
import os

import numpy as np
from absl import app, flags, logging

from uada import domains as domains_lib
from uada import flags as uada_flags
from uada import train_lib
from uada.analysis import retrieval as retrieval_lib
from uada.data import pipeline
from uada.data.labels import CLASS_NAMES


def run_vectors(workdir, *, domain_source=None, domain_target=None, num_vectors=5000,
                positions_per_image=10, seed=0, checkpoint=None):  # fmt: skip
    """Samples source and target positions of `Z` of the run in `workdir`.

    Args:
        workdir: the run's directory.
        domain_source, domain_target: domain names; `None` for the run's own source / target.
        num_vectors: vectors per domain (at most).
        positions_per_image: random positions per validation image.
        seed: seed of the position draw (the same for every run, so runs see the same positions).
        checkpoint: a checkpoint prefix; `None` for the latest.

    Returns:
        `{"source": sample, "target": sample}`, each as `retrieval.sample_positions` returns it
        (with `p_target` where the run has a domain classifier).
    """
    config = train_lib.load_config(workdir)
    model, _ = train_lib.load_model(config, workdir, checkpoint)
    domains_lib.ensure_demo(config)
    samples = {}
    for role, name in (
        ("source", domain_source or config.source),
        ("target", domain_target or config.target),
    ):
        domain = domains_lib.get_domain(name, config)
        dataset = pipeline.eval_dataset(
            domains_lib.load(domain, domain.eval_split, config),
            batch_size=config.eval_batch_size,
            image_size=tuple(config.image_size),
        )
        samples[role] = retrieval_lib.sample_positions(
            model.representation,
            dataset,
            positions_per_image=positions_per_image,
            max_vectors=num_vectors,
            seed=seed,
            domain_classifier=model.domain_classifier,
        )
    return samples


def retrieval(workdirs, output, *, names=None, domain_source=None, domain_target=None,
              num_vectors=5000, positions_per_image=10, seed=0, max_k=49):  # fmt: skip
    """Computes, plots and writes the retrieval curves of `workdirs` (see the module docstring).

    Args:
        workdirs: run directories.
        output: output folder (created).
        names: one legend name per workdir; `None` for the workdirs' folder names.
        domain_source, domain_target, num_vectors, positions_per_image, seed: see `run_vectors`.
        max_k: the largest `k`.

    Returns:
        `(curves, domain_accuracy)`: `{name: float array [max_k]}` and
        `{name: {class name or "all": accuracy or None}}` for the runs with a domain classifier.
    """
    workdirs = list(workdirs)
    names = list(names) if names else [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(names) != len(workdirs):
        raise ValueError(
            f"`names` must give one name per workdir ({len(workdirs)}). Received: names={names}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"`names` must be distinct. Received: names={names}")
    curves, accuracy = {}, {}
    for name, workdir in zip(names, workdirs, strict=True):
        samples = run_vectors(
            workdir,
            domain_source=domain_source,
            domain_target=domain_target,
            num_vectors=num_vectors,
            positions_per_image=positions_per_image,
            seed=seed,
        )
        source, target = samples["source"], samples["target"]
        n_s, n_t = len(source["vectors"]), len(target["vectors"])
        if n_s != n_t:
            logging.warning(
                "%s: %d source and %d target vectors; perfect alignment is then k * %d / %d, not "
                "k / 2 (pass --num_vectors=%d for equal counts).",
                name, n_s, n_t, n_s, n_s + n_t - 1, min(n_s, n_t),
            )  # fmt: skip
        curves[name] = retrieval_lib.retrieval_curve(
            source["vectors"], target["vectors"], max_k=max_k
        )
        if "p_target" in source:
            accuracy[name] = retrieval_lib.domain_accuracy_per_class(
                source["p_target"], source["classes"], target["p_target"], target["classes"]
            )

    os.makedirs(output, exist_ok=True)
    retrieval_lib.plot_retrieval_curves(curves, os.path.join(output, "retrieval"), max_k=max_k)
    with open(os.path.join(output, "retrieval.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["k", *curves])
        for k in range(1, max_k + 1):
            writer.writerow([k, *(f"{curve[k - 1]:.4f}" for curve in curves.values())])
    with open(os.path.join(output, "domain_accuracy.json"), "w") as f:
        json.dump(accuracy, f, indent=2)
    return curves, accuracy


def accuracy_table(accuracy):
    """Renders `{run: {class: accuracy}}` as a Markdown table in percent (classes as rows)."""
    runs = list(accuracy)
    lines = ["| class | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for name in [*CLASS_NAMES, "all"]:
        cells = [accuracy[run].get(name) for run in runs]
        lines.append(
            f"| {name} | "
            + " | ".join("-" if c is None else f"{100 * c:.1f}" for c in cells)
            + " |"
        )
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    curves, accuracy = retrieval(
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
        print(accuracy_table(accuracy))
    print(f"\nWritten to {fv.output}: retrieval.png, retrieval.pdf, retrieval.csv, "
          "domain_accuracy.json")  # fmt: skip


if __name__ == "__main__":
    uada_flags.define_retrieval_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
