"""The statistics of several seeds (paired t-test, Holm's adjustment) and the methods table:
rendered from fabricated results, its rows selected, its runs planned. Nothing is trained."""

import math
import shutil
import types
import warnings

import numpy as np
import pytest
import scipy.stats
from conftest import EXPERIMENTS, run_main

from uada.analysis import tables
from uada.runs import paper_tables, table_runs

# ------------------------------------------------------------------------------------------------
# paired_difference and holm


def test_paired_difference_against_a_hand_computation():
    a = {0: 30.0, 1: 33.0, 2: 36.0}
    b = {0: 29.0, 1: 30.0, 2: 31.0, 3: 99.0}  # seed 3 has no partner: left out
    difference = tables.paired_difference(a, b)
    # d = (1, 3, 5): mean 3, std (ddof 1) 2, SE 2 / sqrt(3), t = 3 sqrt(3) / 2, 2 degrees of
    # freedom, where the t distribution's CDF has the closed form 1/2 + t / (2 sqrt(2 + t^2)):
    # two-sided p = 1 - t / sqrt(2 + t^2), and CDF(q) = 0.975 at
    # q = sqrt(2 * 0.95^2 / (1 - 0.95^2)).
    t = 3 * math.sqrt(3) / 2
    q = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # 4.303
    half_width = q * 2 / math.sqrt(3)
    assert (difference.mean, difference.n) == (3.0, 3)
    # float64 closed forms against scipy's incomplete beta function: both within a few ulp;
    # a wrong degrees of freedom (3 instead of 2) moves p by more than 20%.
    assert difference.p == pytest.approx(1 - t / math.sqrt(2 + t**2), rel=1e-12)
    assert (difference.low, difference.high) == pytest.approx(
        (3 - half_width, 3 + half_width), rel=1e-12
    )


def test_paired_difference_against_scipy_t_distribution():
    rng = np.random.default_rng(0)
    a = dict(enumerate(rng.normal(40.0, 2.0, 5)))
    b = dict(enumerate(rng.normal(38.0, 2.0, 5)))
    d = np.array([a[i] - b[i] for i in range(5)])
    se = d.std(ddof=1) / np.sqrt(5)
    t = d.mean() / se
    difference = tables.paired_difference(a, b)
    assert difference.n == 5 and difference.mean == pytest.approx(d.mean(), rel=1e-12)
    # The same statistic through the t distribution's survival and quantile functions.
    assert difference.p == pytest.approx(2 * scipy.stats.t.sf(abs(t), df=4), rel=1e-10)
    q = scipy.stats.t.ppf(0.975, df=4)
    assert (difference.low, difference.high) == pytest.approx(
        (d.mean() - q * se, d.mean() + q * se), rel=1e-10
    )


def test_paired_difference_with_too_few_seeds_or_no_spread():
    one = tables.paired_difference({0: 30.0}, {0: 29.0, 1: 5.0})
    assert (one.mean, one.n) == (1.0, 1) and np.isnan([one.low, one.high, one.p]).all()
    none = tables.paired_difference({0: 30.0}, {1: 29.0})
    assert none.n == 0 and np.isnan(none.mean)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's zero-variance warning stays out of the console
        constant = tables.paired_difference(
            {0: 31.0, 1: 32.0, 2: 33.0}, {0: 30.0, 1: 31.0, 2: 32.0}
        )
    # Every d_i = 1: the t statistic is infinite, p = 0, the interval has no width.
    assert (constant.mean, constant.low, constant.high, constant.p) == (1.0, 1.0, 1.0, 0.0)
    assert tables.summarize([28.0, 30.0, 32.0]) == (30.0, 2.0)


def test_holm_against_hand_computed_values():
    # Sorted: 0.005 (x 4 = 0.02), 0.01 (x 3 = 0.03), 0.03 (x 2 = 0.06), 0.04 (x 1 = 0.04, but
    # never below the previous step: 0.06).
    assert tables.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1 (0.5 x 2), and the cap carries to the larger p.
    assert tables.holm([0.5, 0.6]) == [1.0, 1.0]
    # A missing p-value is no test: m = 2 here, and it stays nan.
    adjusted = tables.holm([0.02, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert np.isnan(adjusted[1])
    assert tables.holm([]) == [] and tables.holm([0.3]) == [0.3]


# ------------------------------------------------------------------------------------------------
# The methods table, rendered from fabricated results

SEEDS = range(5)
SOURCE = types.SimpleNamespace(source="demo_source", target="demo_target", unseen=("demo_unseen",))
ORACLE = types.SimpleNamespace(source="demo_target", target="demo_source", unseen=("demo_unseen",))
METHODS = ("AdaBN", "UADA", "MinEnt", "AdvEnt", "AdaptSegNet", "self-training")


def _fabricated():
    """`({cell key: {seed: (config, results)}}, {(row, column): {seed: % mIoU}})` for every cell
    of the methods table over 5 seeds: each method = source only + its own offset + noise."""
    rng = np.random.default_rng(1)
    source_only = {"DAN": rng.normal(30.0, 1.0, 5), "BN": rng.normal(30.0, 1.0, 5)}
    offsets = {"source only": 0.0, "AdaBN": 10.0, "UADA": 0.3, "MinEnt": 1.0, "AdvEnt": 2.0,
               "AdaptSegNet": -0.5, "self-training": 3.0}  # fmt: skip
    measured, values = {}, {}
    for label, cells in paper_tables.TABLES["methods"].rows:
        for column, cell in zip(("DAN", "BN"), cells, strict=True):
            if cell is None:
                continue
            if label == "target oracle (DAN)":
                miou, config = rng.normal(52.0, 0.5, 5), ORACLE
            else:
                miou = source_only[column] + offsets[label] + rng.normal(0.0, 0.7, 5)
                miou, config = (source_only[column] if label == "source only" else miou), SOURCE
            values[label, column] = dict(zip(SEEDS, miou, strict=True))
            measured[cell.key] = {
                seed: (config, {"demo_target": {"miou": v / 100, "miou_19": v / 200}})
                for seed, v in zip(SEEDS, miou, strict=True)
            }
    return measured, values


def _expected_line(a, b, values, holm_p):
    x, y = values[a], values[b]
    result = scipy.stats.ttest_rel([x[s] for s in SEEDS], [y[s] for s in SEEDS])
    interval = result.confidence_interval(0.95)
    mean = float(np.mean([x[s] - y[s] for s in SEEDS]))
    what = f"{a[0]}: {a[1]} - {b[1]}" if a[0] == b[0] else f"{a[0]} - {b[0]} ({a[1]})"

    def p(value):
        return "p < 0.001" if value < 0.0005 else f"p = {value:.3f}"

    line = (f"- {what}: {mean:+.1f} [{interval.low:+.1f}, {interval.high:+.1f}] (n=5), "
            f"{p(result.pvalue)}, Holm {p(holm_p)}")  # fmt: skip
    return line + (": **flagged**" if result.pvalue < 0.05 else ""), result.pvalue


def test_methods_table_renders_the_study_family_with_holm_and_the_oracle_room():
    measured, values = _fabricated()
    lines = tables.render("methods", measured, demo=True).splitlines()
    assert lines[2] == "| method | DAN | BN | published, other setting (orientation only) |"
    oracle = next(line for line in lines if line.startswith("| target oracle (DAN) |"))
    assert oracle.endswith("| - | - |")  # no BN oracle, no published number
    advent = next(line for line in lines if line.startswith("| AdvEnt |"))
    assert advent.endswith("| 43.8 (Vu et al., CVPR 2019; DeepLab-v2 ResNet-101) |")
    assert any("orientation only, not comparable" in line for line in lines)
    # The design's family: each method - source only in each column (12), then DAN - BN in each
    # of the 7 rows; Holm over those 19 p-values.
    family = [((m, c), ("source only", c)) for m in METHODS for c in ("DAN", "BN")]
    family += [((row, "DAN"), (row, "BN")) for row in ("source only", *METHODS)]
    p_values = [_expected_line(a, b, values, 0.0)[1] for a, b in family]
    adjusted = tables.holm(p_values)
    expected = [
        _expected_line(a, b, values, h)[0] for (a, b), h in zip(family, adjusted, strict=True)
    ]
    start = lines.index(expected[0])
    assert lines[start : start + 19] == expected
    assert "**flagged**" in lines[start]  # AdaBN: +10 over noise of 0.7
    assert sum("**flagged**" in line for line in expected) == sum(p < 0.05 for p in p_values)
    # The room: oracle - source only (DAN), and each method's share per seed, averaged.
    room = [
        values["target oracle (DAN)", "DAN"][s] - values["source only", "DAN"][s] for s in SEEDS
    ]
    assert any(line.startswith(f"Room for adaptation (DAN): target oracle (DAN) - source only = "
                               f"{np.mean(room):+.1f} [") for line in lines)  # fmt: skip
    shares = [
        100 * (values["AdvEnt", "DAN"][s] - values["source only", "DAN"][s]) / room[s]
        for s in SEEDS
    ]
    assert f"- AdvEnt: {np.mean(shares):+.0f}% ± {np.std(shares, ddof=1):.0f} (n=5)" in lines
    assert not any(line.startswith("Room for adaptation (BN)") for line in lines)


def test_rows_select_the_cells_and_the_comparisons_between_them():
    spec = paper_tables.TABLES["methods"].select(["UADA", "source only"])
    assert spec.labels() == ["source only", "UADA"]  # the table's order
    assert spec.comparisons() == [
        (("UADA", "DAN"), ("source only", "DAN")),
        (("UADA", "BN"), ("source only", "BN")),
        (("source only", "DAN"), ("source only", "BN")),
        (("UADA", "DAN"), ("UADA", "BN")),
    ]
    measured, values = _fabricated()
    lines = tables.render("methods", measured, rows=("source only", "UADA")).splitlines()
    assert [line.split(" |")[0] for line in lines if line.startswith("| ")][1:] == [
        "| source only", "| UADA"]  # fmt: skip
    # Holm over the 4 selected comparisons only (the confirmation's family).
    p_values = [_expected_line(a, b, values, 0.0)[1] for a, b in spec.comparisons()]
    expected = [
        _expected_line(a, b, values, h)[0]
        for (a, b), h in zip(spec.comparisons(), tables.holm(p_values), strict=True)
    ]
    assert [line for line in lines if line.startswith("- ")] == expected
    assert not any(line.startswith("Room for adaptation") for line in lines)  # no oracle row
    with pytest.raises(ValueError, match=r"one or more of \['source only', 'AdaBN', .*'target "
                       r"oracle \(DAN\)'\]\. Received: rows=\['UADA', 'DAN'\]"):  # fmt: skip
        paper_tables.TABLES["methods"].select(["UADA", "DAN"])


# ------------------------------------------------------------------------------------------------
# Planning the methods table, with fake experiment files for the new modes

FAKE_METHODS = {  # distinct configurations that every mode of the planner understands
    "minent": 1e-3, "advent": 1e-4, "adaptsegnet": 1e-5, "self_training": 0.1}  # fmt: skip


@pytest.fixture
def experiments_dir(tmp_path):
    """A copy of experiments/ with a stand-in file for each method experiment of the table
    (UADA with its own lambda), so that planning does not depend on the methods' own files."""
    folder = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS, folder)
    for method, lambda_conf in FAKE_METHODS.items():
        for suffix, norm in (("", "dan"), ("_batch", "batch")):
            (folder / f"gta2cs_{method}{suffix}.flags").write_text(
                f"# A stand-in for the test.\n--flagfile=experiments/gta2cs.flags\n"
                f"--norm={norm}\n--lambda_conf={lambda_conf:g}\n"
            )
    return folder


def test_plan_of_the_methods_table_and_of_selected_rows(experiments_dir):
    runs = table_runs.plan("methods", demo=True, workdir_root="w", experiments_dir=experiments_dir)
    assert len(set(map(id, runs.values()))) == 13  # 12 cells trained + the oracle; AdaBN reuses
    assert runs["table2_dan_source_only"].adabn and runs["table2_batch_source_only"].adabn
    assert runs[paper_tables.ORACLE].workdirs == ["w/demo_tables/oracle_dan"]
    selected = table_runs.plan("methods", demo=True, workdir_root="w", seed=5,
                               experiments_dir=experiments_dir, rows=("source only",))  # fmt: skip
    assert set(selected) == {"table2_dan_source_only", "table2_batch_source_only"}
    assert not selected["table2_dan_source_only"].adabn  # no AdaBN row selected
    assert selected["table2_dan_source_only"].workdirs == ["w/demo_tables/seed5/source_only_dan"]
    with pytest.raises(ValueError, match="rows=\\['AdaBM'\\]"):
        table_runs.plan("methods", demo=True, experiments_dir=experiments_dir, rows=("AdaBM",))


def test_plan_reads_only_the_experiment_files_a_partial_folder_has(tmp_path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    for name in ("base", "gta2cs", "gta2cs_source_only", paper_tables.ORACLE, "table2_dan_uada"):
        shutil.copy(EXPERIMENTS / f"{name}.flags", folder)
    runs = table_runs.plan(4, workdir_root="w", experiments_dir=folder)
    # Table 2's DAN/UADA file is there: its workdir may hold Table 4's UADA run.
    assert runs["gta2cs"].workdirs == ["w/gta2cs", "w/table2_dan_uada"]


def test_reproduce_methods_dry_run_and_usage_errors(experiments_dir):
    common = (
        "--demo",
        "--dry_run",
        "--workdir_root=nowhere",
        f"--experiments_dir={experiments_dir}",
    )
    result = run_main("uada.reproduce", "--table=methods", "--seeds=5,6", *common)
    trains = [line for line in result.stdout.splitlines() if line.startswith("train ")]
    assert len(trains) == 2 * 13
    assert "train  nowhere/demo_tables/seed6/uada_dan_lambda0.001  (gta2cs_minent)" in trains
    assert result.stdout.count("--adapt_statistics=target") == 2 * 2  # AdaBN, DAN and BN
    # The confirmation of a flagged comparison: only the cells it needs.
    result = run_main("uada.reproduce", "--table=methods", "--seeds=5",
                      "--rows=source only, AdvEnt", *common)  # fmt: skip
    assert [line.split("(")[-1] for line in result.stdout.splitlines() if
            line.startswith("train ")] == [  # fmt: skip
        "table2_dan_source_only)", "table2_batch_source_only)", "gta2cs_advent)",
        "gta2cs_advent_batch)"]  # fmt: skip
    # --table=all is the paper's tables: no method experiment.
    result = run_main("uada.reproduce", "--table=all", *common)
    assert "(table2_dan_uada" in result.stdout and "minent" not in result.stdout
    bad = run_main("uada.reproduce", "--table=methods", "--rows=UADA,Minent", *common, check=False)
    assert bad.returncode != 0 and "Received: rows=['UADA', 'Minent']" in bad.stderr
    assert "'MinEnt'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_main("uada.reproduce", "--table=4,methods", "--rows=UADA", *common, check=False)
    assert bad.returncode != 0 and "--rows takes one --table" in bad.stderr
    bad = run_main("uada.reproduce", "--table=method", *common, check=False)
    assert bad.returncode != 0 and "'methods'" in bad.stderr
    (experiments_dir / "gta2cs_adaptsegnet_batch.flags").unlink()
    bad = run_main("uada.reproduce", "--table=methods", *common, check=False)
    assert bad.returncode != 0 and "gta2cs_adaptsegnet_batch.flags not found" in bad.stderr
