"""The paper's tables rendered with the measured numbers, and the statistics of several seeds.

`reproduce` runs or reuses the runs of a table (`uada.runs.table_runs`) and renders it (`render`):
the paper's and the measured numbers side by side (`uada.runs.paper_tables.TABLES`), and below
the table its comparisons (`Table.differences`). With several seeds (`reproduce(..., seeds=...)`)
each cell renders as mean ± sample standard deviation with the individual runs, and each
comparison as a difference paired by seed with its standard error, called real only beyond 2 SE
(`paired_difference`).
"""

import os

import numpy as np

from uada.runs import table_runs
from uada.runs.paper_tables import TABLES

CONVENTIONS = {"official": "miou", "original": "miou_19"}


def _domain(config, role):
    if role == "source":
        return config.source
    if role == "target":
        return config.target
    index = int(role.split(":")[1])
    return config.unseen[index] if index < len(config.unseen) else None


def _by_seed(entry):
    """A `measured` entry as `{seed: (config, results)}` (a single run is seed `None`)."""
    return entry if isinstance(entry, dict) else {None: entry}


def _cell_values(cell, measured, key):
    """`({seed: % mIoU}, tested-on domains)` of a cell (empty where nothing was measured)."""
    values, domains = {}, set()
    if cell is None or cell.key not in measured:
        return values, domains
    for seed, (config, results) in _by_seed(measured[cell.key]).items():
        domain = _domain(config, cell.role)
        if domain is None:
            continue
        domains.add(domain)
        result = results.get(domain)
        if result is not None and result.get(key) is not None:
            values[seed] = 100 * result[key]
    return values, domains


def summarize(values):
    """`(mean, sample standard deviation)` of a list of numbers (std `nan` for one number)."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), std


def paired_difference(a, b):
    """The difference `a - b` of two cells measured with the same seeds, and its significance.

    Runs with the same seed share the demo domains' draw (generated from the seed), the
    initialization and the data order, so the test pairs them: `d_i = a_i - b_i` over the seeds
    both cells have, mean `d`, standard error `SE = std(d, ddof=1) / sqrt(n)`. The difference is
    called real when `|mean| > 2 SE` (about a 95% interval under a normal approximation; with 3
    seeds a t-test would need 4.3 SE, so `2 SE` is the issue's stated, lenient, threshold).

    Args:
        a, b: `{seed: value}`.

    Returns:
        `(mean, SE, n, real)`; SE is `nan` and real `False` with fewer than two common seeds.
    """
    seeds = [seed for seed in a if seed in b]
    d = np.asarray([a[seed] - b[seed] for seed in seeds], dtype=np.float64)
    if len(d) == 0:
        return float("nan"), float("nan"), 0, False
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), len(d), False
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    return mean, se, len(d), abs(mean) > 2 * se


def _format_values(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{next(iter(values.values())):.1f}"
    mean, std = summarize(list(values.values()))
    runs = ", ".join(f"{v:.1f}" for v in values.values())
    return f"{mean:.1f} ± {std:.1f} ({runs})"


def render(table, measured, *, convention="official", demo=False):
    """The Markdown table of `table` with the paper's and the measured numbers side by side.

    A cell measured with several seeds shows `mean ± sample standard deviation (run, run, ...)`.
    Below the table, each of the table's `differences` (`a - b`, paired by seed:
    `paired_difference`) with its standard error and whether it is real (`|mean| > 2 SE`).

    Args:
        table: a number in `TABLES`.
        measured: `{cell key: (config, results)}` as `run_all` returns, or
            `{cell key: {seed: (config, results)}}` for several seeds (missing cells render
            as `-`).
        convention: `"official"` (`miou`) or `"original"` (`miou_19`).
        demo: note that the measured numbers come from the demo domains.
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"`convention` must be one of {list(CONVENTIONS)}. Received: convention={convention!r}"
        )
    spec = TABLES[table]
    key = CONVENTIONS[convention]
    header = [spec.row_header]
    for column in spec.columns:
        header += [f"{column} paper", f"{column} measured"]
    lines = [
        f"{spec.title}" + (" — measured on the demo domains" if demo else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    tested_on = {}
    cell_values = {}
    seeds = set()
    for label, cells in spec.rows:
        row = [label]
        for column, cell in zip(spec.columns, cells, strict=True):
            paper = "-" if cell is None or cell.paper is None else f"{cell.paper:.1f}"
            values, domains = _cell_values(cell, measured, key)
            if domains:
                tested_on.setdefault(column, set()).update(domains)
            cell_values[label, column] = values
            seeds.update(values)
            row += [paper, _format_values(values)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    mapping = ", ".join(f"{c}: {'/'.join(sorted(d))}" for c, d in tested_on.items())
    lines.append(
        f"mIoU convention: {convention} ({key}); measured columns tested on {mapping or '-'}."
    )
    differences = _render_differences(spec, cell_values)
    if differences:
        several = len(seeds) > 1
        lines += [
            "",
            "Differences (a - b, % mIoU"
            + (
                f"; paired by seed over {len(seeds)} seeds: mean ± standard error; real when "
                "|mean| > 2 SE):"
                if several
                else "; one run each, no error bar):"
            ),
            "",
        ]
        lines += differences
    return "\n".join(lines) + "\n"


def _render_differences(spec, cell_values):
    """One line per difference of `spec` that has numbers on both sides."""
    pairs = []
    for a, b in spec.differences:
        if isinstance(a, str):  # two rows, column by column
            pairs += [((a, column), (b, column)) for column in spec.columns]
        else:
            pairs.append((a, b))
    lines = []
    for a, b in pairs:
        if not cell_values.get(a) or not cell_values.get(b):
            continue
        mean, se, n, real = paired_difference(cell_values[a], cell_values[b])
        if a[0] == b[0]:  # one row, two columns: "none: UADA - source only"
            what = f"- {a[0]}: {a[1]} - {b[1]}"
        elif a[1] == b[1]:  # two rows, one column: "UADA - source only (Cityscapes)"
            what = f"- {a[0]} - {b[0]} ({a[1]})"
        else:
            what = f"- {a[0]} ({a[1]}) - {b[0]} ({b[1]})"
        if n >= 2:
            verdict = "**real**" if real else "within noise"
            lines.append(f"{what}: {mean:+.1f} ± {se:.1f} (n={n}): {verdict}")
        elif n == 1:
            lines.append(f"{what}: {mean:+.1f}")
    return lines


def reproduce(table, *, demo=False, workdir_root="workdirs", overrides=(), dry_run=False,
              convention="official", output=None, experiments_dir=table_runs.EXPERIMENTS_DIR,
              seeds=()):  # fmt: skip
    """Runs or reuses the runs of `table`, then renders and writes it (`python -m uada.reproduce`).

    Args:
        seeds: run every cell once per seed (`plan(..., seed=seed)`) and render mean ± standard
            deviation with the individual runs; empty: one run per cell with the experiments'
            own seed.

    Returns:
        The rendered Markdown table, or with `dry_run` the plan (nothing is trained).
    """
    plans = {
        seed: table_runs.plan(
            table,
            demo=demo,
            workdir_root=workdir_root,
            overrides=overrides,
            experiments_dir=experiments_dir,
            seed=seed,
        )  # fmt: skip
        for seed in (seeds or (None,))
    }
    lines = [line for runs in plans.values() for line in table_runs.describe(runs)]
    if dry_run:
        return "\n".join(lines) + "\n"
    measured = {}
    for seed, runs in plans.items():
        for key, entry in table_runs.run_all(runs).items():
            measured.setdefault(key, {})[seed] = entry
    text = render(table, measured, convention=convention, demo=demo)
    folder = os.path.join(workdir_root, table_runs.DEMO_DIR if demo else "")
    output = output or os.path.join(folder, f"table{table}.md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text + "\nRuns:\n\n" + "\n".join(f"    {line}" for line in lines) + "\n")
    return text
