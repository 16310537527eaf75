"""The paper's tables rendered with the measured numbers, and the statistics of several seeds.

`reproduce` runs or reuses the runs of a table (`uada.runs.table_runs`) and renders it (`render`):
the paper's and the measured numbers side by side (`uada.runs.paper_tables.TABLES`), and below
the table its comparisons (`Table.differences`). With several seeds (`reproduce(..., seeds=...)`)
each cell renders as mean ± sample standard deviation with the individual runs, and each
comparison as a difference paired by seed: its mean, 95% confidence interval and paired t-test
p-value (`paired_difference`, `scipy.stats.ttest_rel`), with Holm's adjusted p-value over the
table's comparisons (`holm`). A raw p below 0.05 *flags* a comparison for confirmation on new
seeds (`reproduce(..., rows=...)` runs only the cells it needs); a flag is not a finding.
"""

import dataclasses
import os
import warnings

import numpy as np

from uada.runs import table_runs
from uada.runs.paper_tables import get_table

CONVENTIONS = {"official": "miou", "original": "miou_19"}
# A comparison with a paired t-test p-value below this is flagged for confirmation (a flag is not
# a finding: docs/RESULTS.md, the methods study's decision rule).
FLAG_P = 0.05


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


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """The difference `a - b` of two cells paired by seed (`paired_difference`).

    `mean` is the mean of `d_i = a_i - b_i`, `[low, high]` its 95% confidence interval from the
    t distribution with `n - 1` degrees of freedom, `p` the two-sided p-value of the paired t-test
    (null hypothesis: the mean difference is 0); `low`, `high` and `p` are `nan` with fewer than
    two seeds.
    """

    mean: float
    low: float
    high: float
    p: float
    n: int


def paired_difference(a, b):
    """The difference `a - b` of two cells measured with the same seeds: a paired t-test.

    Runs with the same seed share the demo domains' draw (generated from the seed), the
    initialization and the data order, so the comparison pairs them: `d_i = a_i - b_i` over the
    seeds both cells have, tested with `scipy.stats.ttest_rel` (two-sided) and its
    `confidence_interval(0.95)`: `mean ± t_{0.975, n-1} * std(d, ddof=1) / sqrt(n)`.

    Args:
        a, b: `{seed: value}`.

    Returns:
        A `PairedDifference`. Where every `d_i` is the same, the t statistic is infinite
        (`p = 0`) or, for `d = 0`, undefined (`p` is `nan`): scipy's limits.
    """
    seeds = [seed for seed in a if seed in b]
    x = np.asarray([a[seed] for seed in seeds], dtype=np.float64)
    y = np.asarray([b[seed] for seed in seeds], dtype=np.float64)
    n = len(seeds)
    if n < 2:
        mean = float(x[0] - y[0]) if n else float("nan")
        return PairedDifference(mean, float("nan"), float("nan"), float("nan"), n)
    import scipy.stats  # here: its import would add 0.4 s to every command's start-up

    with warnings.catch_warnings():
        if np.all(x - y == x[0] - y[0]):  # scipy warns of the zero variance; the limit is meant
            warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.stats.ttest_rel(x, y)
        interval = result.confidence_interval(0.95)
    return PairedDifference(
        float(np.mean(x - y)), float(interval.low), float(interval.high), float(result.pvalue), n
    )


def holm(p_values):
    """Holm's step-down adjusted p-values of a family of tests (Holm, Scand. J. Statist. 1979).

    With the `m` p-values sorted, `p_(1) <= ... <= p_(m)`, the adjusted value of the i-th smallest
    is `max_{j <= i} min(1, (m - j + 1) * p_(j))`: the smallest is multiplied by `m`, the next by
    `m - 1`, and so on, kept monotone and capped at 1. Rejecting where the adjusted value is below
    `alpha` bounds the probability of any false rejection in the family by `alpha`, for any
    dependence between the tests.

    Args:
        p_values: a sequence of p-values; `nan` entries are not tests (left out of `m`) and stay
            `nan`.

    Returns:
        The adjusted p-values, in the order of `p_values`.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return [float(value) for value in adjusted]


def _format_values(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{next(iter(values.values())):.1f}"
    mean, std = summarize(list(values.values()))
    runs = ", ".join(f"{v:.1f}" for v in values.values())
    return f"{mean:.1f} ± {std:.1f} ({runs})"


def _format_p(p):
    return "p < 0.001" if p < 0.0005 else f"p = {p:.3f}"


def render(table, measured, *, convention="official", demo=False, rows=None):
    """The Markdown table of `table` with the paper's and the measured numbers side by side.

    A cell measured with several seeds shows `mean ± sample standard deviation (run, run, ...)`.
    Below the table, each of the table's comparisons (`a - b`, paired by seed:
    `paired_difference`) with its 95% confidence interval, the paired t-test's p-value and
    Holm's adjusted p-value over the table's comparisons that have one (`holm`); a raw
    `p < 0.05` is marked **flagged**: a candidate for confirmation on new seeds, not a finding.
    A table with a `bound` and a `baseline` row also gets the room between them and each
    other row's share of it.

    Args:
        table: a key in `TABLES` (a number, or `"methods"`).
        measured: `{cell key: (config, results)}` as `run_all` returns, or
            `{cell key: {seed: (config, results)}}` for several seeds (missing cells render
            as `-`).
        convention: `"official"` (`miou`) or `"original"` (`miou_19`).
        demo: note that the measured numbers come from the demo domains.
        rows: render only these row labels and the comparisons between them (`Table.select`).
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"`convention` must be one of {list(CONVENTIONS)}. Received: convention={convention!r}"
        )
    spec = get_table(table, rows)
    key = CONVENTIONS[convention]
    # A table without any of the paper's numbers (the methods table) has no paper columns.
    papers = [cell.paper for _, cells in spec.rows for cell in cells if cell is not None]
    with_paper = any(paper is not None for paper in papers)
    published = dict(spec.published)
    header = [spec.row_header]
    for column in spec.columns:
        header += [f"{column} paper", f"{column} measured"] if with_paper else [column]
    if published:
        header.append("published, other setting (orientation only)")
    lines = [
        f"{spec.title}" + (" — measured on the demo domains" if demo else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1 - bool(published)) + ("---|" if published else ""),
    ]
    tested_on = {}
    cell_values = {}
    seeds = set()
    for label, cells in spec.rows:
        row = [label]
        for column, cell in zip(spec.columns, cells, strict=True):
            values, domains = _cell_values(cell, measured, key)
            if domains:
                tested_on.setdefault(column, set()).update(domains)
            cell_values[label, column] = values
            seeds.update(values)
            if with_paper:
                row.append("-" if cell is None or cell.paper is None else f"{cell.paper:.1f}")
            row.append(_format_values(values))
        if published:
            row.append(published.get(label, "-"))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    mapping = ", ".join(f"{c}: {'/'.join(sorted(d))}" for c, d in tested_on.items())
    lines.append(
        f"mIoU convention: {convention} ({key}); measured columns tested on {mapping or '-'}."
    )
    if published:
        lines.append(
            "The published numbers are each method's own paper's, on the full GTA5 -> "
            "Cityscapes with its own network and budget: orientation only, not comparable "
            "with the measured columns."
        )
    differences = _render_differences(spec, cell_values)
    if differences:
        several = len(seeds) > 1
        lines += [
            "",
            "Differences (a - b, % mIoU"
            + (
                f"; paired by seed over {len(seeds)} seeds: mean [95% confidence interval] "
                "(n), the paired t-test's p and Holm's adjusted p over the comparisons below; "
                "**flagged**: p < 0.05, to be confirmed on new seeds, not a finding):"
                if several
                else "; one run each, no error bar):"
            ),
            "",
        ]
        lines += differences
    lines += _render_room(spec, cell_values)
    return "\n".join(lines) + "\n"


def _describe(a, b):
    """`a - b` in words: one row's two columns, two rows of one column, or two cells."""
    if a[0] == b[0]:  # one row, two columns: "none: UADA - source only"
        return f"{a[0]}: {a[1]} - {b[1]}"
    if a[1] == b[1]:  # two rows, one column: "UADA - source only (Cityscapes)"
        return f"{a[0]} - {b[0]} ({a[1]})"
    return f"{a[0]} ({a[1]}) - {b[0]} ({b[1]})"


def _render_differences(spec, cell_values):
    """One line per comparison of `spec` that has numbers on both sides, with Holm's adjusted
    p-values over those that have a p-value (the table's family)."""
    measured = [
        (a, b, paired_difference(cell_values[a], cell_values[b]))
        for a, b in spec.comparisons()
        if cell_values.get(a) and cell_values.get(b)
    ]
    adjusted = holm([difference.p for _, _, difference in measured])
    lines = []
    for (a, b, difference), holm_p in zip(measured, adjusted, strict=True):
        line = f"- {_describe(a, b)}: {difference.mean:+.1f}"
        if difference.n >= 2:
            line += f" [{difference.low:+.1f}, {difference.high:+.1f}] (n={difference.n})"
            if not np.isnan(difference.p):
                line += f", {_format_p(difference.p)}, Holm {_format_p(holm_p)}"
                if difference.p < FLAG_P:
                    line += ": **flagged**"
        lines.append(line)
    return lines


def _render_room(spec, cell_values):
    """The room between `spec.bound` and `spec.baseline` (oracle - source only, paired by seed)
    in each column the bound has, and each other row's share of it:
    `(row - baseline) / (bound - baseline)` per seed, mean ± standard deviation over the seeds."""
    if spec.bound is None or spec.baseline is None:
        return []
    labels = spec.labels()
    if spec.bound not in labels or spec.baseline not in labels:
        return []
    lines = []
    for column in spec.columns:
        bound, base = cell_values[spec.bound, column], cell_values[spec.baseline, column]
        if not bound or not base:
            continue
        room = paired_difference(bound, base)
        text = f"{room.mean:+.1f}"
        if room.n >= 2:
            text += f" [{room.low:+.1f}, {room.high:+.1f}] (n={room.n})"
        lines += [
            "",
            f"Room for adaptation ({column}): {spec.bound} - {spec.baseline} = {text}. Each "
            f"row's share of it, (row - {spec.baseline}) / ({spec.bound} - {spec.baseline}) per "
            "seed, mean ± standard deviation over the seeds:",
            "",
        ]
        for label in labels:
            values = cell_values[label, column]
            if label in (spec.bound, spec.baseline) or not values:
                continue
            shares = [
                (values[seed] - base[seed]) / (bound[seed] - base[seed])
                for seed in values
                if seed in base and seed in bound and bound[seed] != base[seed]
            ]
            if not shares:
                continue
            mean, std = summarize([100 * share for share in shares])
            share = f"{mean:+.0f}%" + (f" ± {std:.0f}" if len(shares) > 1 else "")
            lines.append(f"- {label}: {share} (n={len(shares)})")
    return lines


def reproduce(table, *, demo=False, workdir_root="workdirs", overrides=(), dry_run=False,
              convention="official", output=None, experiments_dir=table_runs.EXPERIMENTS_DIR,
              seeds=(), rows=None):  # fmt: skip
    """Runs or reuses the runs of `table`, then renders and writes it (`python -m uada.reproduce`).

    Args:
        seeds: run every cell once per seed (`plan(..., seed=seed)`) and render mean ± standard
            deviation with the individual runs; empty: one run per cell with the experiments'
            own seed.
        rows: only these row labels of the table, their runs and the comparisons between them
            (`Table.select`); None: every row.

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
            rows=rows,
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
    text = render(table, measured, convention=convention, demo=demo, rows=rows)
    folder = os.path.join(workdir_root, table_runs.DEMO_DIR if demo else "")
    output = output or os.path.join(folder, get_table(table).file_name)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text + "\nRuns:\n\n" + "\n".join(f"    {line}" for line in lines) + "\n")
    return text
