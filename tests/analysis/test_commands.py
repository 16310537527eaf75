"""The analysis commands on a real (smoke) run: retrieval, prediction grid, reproduce."""

import csv
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
from absl import flags
from conftest import EXPERIMENTS, run_main
from PIL import Image

from uada.analysis import prediction_grid, retrieval_curve, tables
from uada.runs import paper_tables, table_runs

# ------------------------------------------------------------------------------------------------
# uada.retrieval


def test_retrieval_writes_curves_csv_and_domain_accuracy(smoke_run, tmp_path):
    curves, accuracy = retrieval_curve.retrieval(
        [smoke_run.workdir, smoke_run.workdir],
        str(tmp_path),
        names=["first", "second"],
        num_vectors=30,
        positions_per_image=5,
        max_k=7,
    )
    # The same model, the same seeded positions: the same curve, bounded by 0 <= y <= k.
    np.testing.assert_array_equal(curves["first"], curves["second"])
    k = np.arange(1, 8)
    assert np.all(curves["first"] >= 0) and np.all(curves["first"] <= k)
    assert np.all(np.diff(curves["first"]) >= 0)  # counts among more neighbours never drop
    with open(tmp_path / "retrieval.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["k", "first", "second"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 8))
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], curves["first"], atol=1e-4)
    assert Image.open(tmp_path / "retrieval.png").size[0] > 100
    assert (tmp_path / "retrieval.pdf").read_bytes()[:4] == b"%PDF"
    # The smoke run is a UADA run: it has a domain classifier, whose accuracy is in [0, 1].
    saved = json.loads((tmp_path / "domain_accuracy.json").read_text())
    assert saved == accuracy and set(saved) == {"first", "second"}
    assert 0.0 <= saved["first"]["all"] <= 1.0
    assert "road" in saved["first"]


def test_retrieval_names_must_match_workdirs(smoke_run, tmp_path):
    with pytest.raises(ValueError, match=r"one name per workdir \(1\)"):
        retrieval_curve.retrieval([smoke_run.workdir], str(tmp_path), names=["a", "b"])


def test_retrieval_command(smoke_run, tmp_path):
    result = run_main(
        "uada.retrieval",
        f"--workdirs={smoke_run.workdir}",
        f"--output={tmp_path}",
        "--names=smoke",
        "--num_vectors=20",
        "--max_k=5",
    )
    assert "| smoke |" in result.stdout and "Domain classifier accuracy" in result.stdout
    assert (tmp_path / "retrieval.png").is_file()


# ------------------------------------------------------------------------------------------------
# uada.predict_grid


def test_prediction_grid_of_two_runs(smoke_run, tmp_path):
    path = prediction_grid.predict_grid(
        smoke_run.workdir, smoke_run.workdir, "demo_unseen", [0, 2], str(tmp_path / "grid.png")
    )
    width, height = Image.open(path).size
    assert width > height  # four columns of 2:1 images side by side
    with pytest.raises(ValueError, match=r"4 images\). Received: indices=\[0, 9\]"):
        prediction_grid.predict_grid(
            smoke_run.workdir, smoke_run.workdir, "demo_target", [0, 9], str(tmp_path / "x.png")
        )
    with pytest.raises(ValueError, match="domain='kitti'"):
        prediction_grid.predict_grid(smoke_run.workdir, smoke_run.workdir, "kitti", [0], "x.png")


def test_validation_images_are_the_splits_images(smoke_run):
    images, labels = prediction_grid.validation_images(smoke_run.config, "demo_target", [1, 0])
    again, _ = prediction_grid.validation_images(smoke_run.config, "demo_target", [0])
    assert images.shape == (2, 32, 64, 3) and labels.shape == (2, 32, 64)
    np.testing.assert_array_equal(images[1], again[0])


# ------------------------------------------------------------------------------------------------
# uada.reproduce (uada.analysis.tables)


def _fake_results(**miou):
    return {
        d: {"miou": v, "miou_19": v / 2, "per_class": {}, "num_images": 1} for d, v in miou.items()
    }


def test_render_places_paper_and_measured_numbers():
    config = table_runs.parse_config(table_runs.experiment_argv("gta2cs"))
    measured = {
        "gta2cs": (
            config,
            _fake_results(gta5=0.6, cityscapes=0.35, mapillary=0.4, apolloscape=0.25),
        )
    }
    text = tables.render(4, measured)
    lines = text.splitlines()
    assert "| training | GTA5 paper | GTA5 measured | Cityscapes paper |" in lines[2]
    assert "| UADA | 62.7 | 60.0 | 38.2 | 35.0 | 38.5 | 40.0 | 27.4 | 25.0 |" in lines
    assert "| source only | 62.2 | - | 34.8 | - | 37.1 | - | 25.3 | - |" in lines
    assert "| UADA | 62.7 | 30.0 |" in tables.render(4, measured, convention="original")
    with pytest.raises(ValueError, match="convention='bad'"):
        tables.render(4, measured, convention="bad")


def test_plan_shares_runs_and_maps_demo_experiments():
    runs = table_runs.plan(2, demo=True, workdir_root="w", overrides=("train_steps=10",))
    assert len(runs) == 11 and len(set(map(id, runs.values()))) == 11
    oracle = runs[paper_tables.ORACLE].config  # the bound: trained on the demo target's labels
    assert (oracle.mode, oracle.source, oracle.target) == (
        "source_only", "demo_target", "demo_source")  # fmt: skip
    assert runs[paper_tables.ORACLE].workdirs[0] == "w/demo_tables/oracle_dan"
    run = runs["table2_split_batch_uada"]
    assert (run.config.source, run.config.target, run.config.unseen) == (
        "demo_source", "demo_target", ("demo_unseen",))  # fmt: skip
    assert (run.config.mode, run.config.norm, run.config.backbone) == (
        "uada", "split_batch", "resnet_tiny")  # fmt: skip
    assert (
        run.config.train_steps == 10
        and run.workdirs[0] == "w/demo_tables/uada_split_batch_lambda0.01"
    )
    # Table 3 without --demo: lambda 1e-2 is the run of Table 4 and Table 2 as well.
    runs = table_runs.plan(3, workdir_root="w")
    shared = runs["table3_gta5_cityscapes_lambda_1e-2"]
    assert {"w/gta2cs", "w/table2_dan_uada"} <= set(shared.workdirs)
    assert runs["table3_cityscapes_mapillary_lambda_1e-3"].config.lambda_conf == 0.001
    # --demo has no Cityscapes -> Mapillary column (Table 3) and no Table 6.
    assert not any("mapillary" in name for name in table_runs.plan(3, demo=True))
    with pytest.raises(ValueError, match="Table 6 .* has no demo analogue"):
        table_runs.plan(6, demo=True)
    with pytest.raises(ValueError, match="table=5"):
        table_runs.plan(5)
    with pytest.raises(flags.IllegalFlagValueError, match="train_steps=-1"):
        table_runs.plan(1, overrides=("train_steps=-1",))


def test_seeds_shift_and_weights_get_their_own_workdirs(tmp_path):
    weights = tmp_path / "tiny.weights.h5"
    weights.write_bytes(b"")  # the flag checks that the file exists; nothing is loaded here
    overrides = ("train_steps=10", "demo_shift=appearance", f"weights={weights}")
    runs = table_runs.plan(4, demo=True, workdir_root="w", overrides=overrides, seed=2)
    run = runs["gta2cs"]
    assert run.config.seed == 2 and run.config.demo_shift == ("appearance",)
    assert run.workdirs == ["w/demo_tables/seed2/uada_dan_lambda0.01_shift-appearance_weights-tiny"]
    assert table_runs.plan(4, workdir_root="w", seed=1)["gta2cs"].workdirs[0] == "w/seed1/gta2cs"
    result = run_main("uada.reproduce", "--table=1,4", "--demo", "--dry_run", "--seeds=0,1",
                         "--workdir_root=nowhere")  # fmt: skip
    for seed in (0, 1):
        assert f"train  nowhere/demo_tables/seed{seed}/oracle_dan  (gta2cs_target_oracle)" in (
            result.stdout
        )
        assert f"--source=demo_target --target=demo_source --seed={seed}" in result.stdout
    bad = run_main("uada.reproduce", "--table=4", "--dry_run", "--seeds=0,x", check=False)
    assert bad.returncode != 0 and "--seeds" in bad.stderr


def test_render_with_seeds_shows_mean_std_runs_and_paired_differences():
    so = table_runs.parse_config(table_runs.experiment_argv("gta2cs_source_only", demo=True))
    uada = table_runs.parse_config(table_runs.experiment_argv("gta2cs", demo=True))
    oracle = table_runs.parse_config(table_runs.experiment_argv(paper_tables.ORACLE, demo=True))

    def per_seed(config, values):
        return {seed: (config, _fake_results(demo_target=v)) for seed, v in enumerate(values)}

    measured = {
        "gta2cs_source_only": per_seed(so, [0.29, 0.30, 0.31]),
        "gta2cs": per_seed(uada, [0.30, 0.33, 0.36]),
        paper_tables.ORACLE: {
            seed: (oracle, {"demo_target": {"miou": v, "miou_19": v}, "demo_source": None})
            for seed, v in enumerate([0.5, 0.6, 0.7])
        },
    }
    lines = tables.render(4, measured, demo=True).splitlines()
    assert "| source only | 62.2 | - | 34.8 | 30.0 ± 1.0 (29.0, 30.0, 31.0) |" in "\n".join(lines)
    assert "| UADA | 62.7 | - | 38.2 | 33.0 ± 3.0 (30.0, 33.0, 36.0) |" in "\n".join(lines)
    oracle_row = next(line for line in lines if line.startswith("| target oracle |"))
    assert oracle_row.startswith("| target oracle | - | - | - | 60.0 ± 10.0 (50.0, 60.0, 70.0) |")
    assert "paired by seed over 3 seeds" in "\n".join(lines)
    # d = (1, 3, 5): mean 3, SE 2 / sqrt(3); with 2 degrees of freedom the t distribution's CDF
    # is 1/2 + t / (2 sqrt(2 + t^2)), so t = 3 sqrt(3) / 2 has p = 1 - t / sqrt(2 + t^2) = 0.122
    # and the 95% interval is 3 ± 4.303 SE = [-2.0, +8.0] (test_methods_table.py checks these).
    # d = (21, 30, 39): mean 30, SE 9 / sqrt(3), t = 5.774, p = 0.029, [+7.6, +52.4]. Holm over
    # the two comparisons: 2 * 0.0287 = 0.057, then max(0.057, 0.122) = 0.122.
    assert (
        "- UADA - source only (Cityscapes): +3.0 [-2.0, +8.0] (n=3), p = 0.122, Holm p = 0.122"
    ) in lines
    assert (
        "- target oracle - source only (Cityscapes): +30.0 [+7.6, +52.4] (n=3), p = 0.029, "
        "Holm p = 0.057: **flagged**"
    ) in lines


def test_dry_run_command():
    result = run_main("uada.reproduce", "--table=1", "--demo", "--dry_run",
                         "--workdir_root=nowhere", "--set=train_steps=7")  # fmt: skip
    assert (
        "train  nowhere/demo_tables/multi_domain_batch  (table1_bn_multi_domain)" in result.stdout
    )
    assert "--mode=multi_domain --norm=batch --lambda_conf=0.01 --train_steps=7" in result.stdout
    bad = run_main("uada.reproduce", "--table=6", "--demo", check=False)
    assert bad.returncode != 0 and "no demo analogue" in bad.stderr


def test_dry_run_from_another_directory_reads_experiments_dir(tmp_path):
    # As from an installed package: the experiment files by an explicit path, the process's
    # directory unchanged (the workdirs are relative to it).
    result = run_main("uada.reproduce", "--table=4", "--dry_run", "--workdir_root=w",
                      f"--experiments_dir={EXPERIMENTS}", cwd=tmp_path)  # fmt: skip
    assert f"python -m uada.train --flagfile={EXPERIMENTS}/gta2cs.flags --workdir=w/gta2cs" in (
        result.stdout
    )
    missing = run_main("uada.reproduce", "--table=4", "--dry_run", cwd=tmp_path,
                       check=False)  # fmt: skip
    assert missing.returncode != 0 and "--experiments_dir" in missing.stderr
    cwd = os.getcwd()
    runs = table_runs.plan(4, workdir_root="w", experiments_dir=str(EXPERIMENTS))
    assert os.getcwd() == cwd and runs["gta2cs"].config.lambda_conf == 0.01


def _smoke_overrides(config):
    """`--set` items that turn the demo settings into the smoke run's."""
    demo = table_runs.parse_config(table_runs.experiment_argv("gta2cs", demo=True))
    items = []
    for name, value in config.to_dict().items():
        if value != demo.to_dict()[name]:
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            items.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return tuple(items)


def test_reproduce_reuses_a_finished_run_and_trains_the_rest(smoke_run, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO, logger="absl")
    overrides = _smoke_overrides(smoke_run.config)
    root = tmp_path / "workdirs"
    # The smoke run is Table 4's UADA row on the demo (with the smoke settings): reused as is.
    reused = root / "demo_tables" / "uada_dan_lambda0.01"
    shutil.copytree(smoke_run.workdir, reused)
    # Written before results were named by what they measured: still found.
    (reused / "eval_32x64.json").rename(reused / "eval_384x768.json")
    plan = table_runs.describe(table_runs.plan(4, demo=True, workdir_root=str(root),
                                             overrides=overrides))  # fmt: skip
    assert plan[0].startswith("train ") and plan[1].startswith("reuse ")
    text = tables.reproduce(4, demo=True, workdir_root=str(root), overrides=overrides)
    # One line per run with its result; no run's progress bar or table.
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    expected = 100 * smoke_run.results["demo_target"]["miou"]
    miou = ", ".join(f"{d} {100 * r['miou']:.1f}" for d, r in smoke_run.results.items())
    assert any(line.startswith(f"{reused} (") and line.endswith(f": reused; mIoU (%) {miou}")
               for line in lines), lines  # fmt: skip
    trained = [line for line in lines if re.search(r": trained in \d+ s; mIoU \(%\) demo_", line)]
    assert len(trained) == 2, lines
    out = capsys.readouterr().out
    assert "/step" not in out and "| demo_target |" not in out
    uada_row = [line for line in text.splitlines() if line.startswith("| UADA |")][0]
    expected = 100 * smoke_run.results["demo_target"]["miou"]
    assert f"| 38.2 | {expected:.1f} |" in uada_row
    assert uada_row.endswith("| 27.4 | - |")  # the demo has no second unseen domain
    # The source-only run and the oracle were trained and are now reused.
    assert (root / "demo_tables" / "source_only_dan" / "eval_32x64.json").is_file()
    assert (root / "demo_tables" / "oracle_dan" / "eval_32x64.json").is_file()
    assert "- UADA - source only (Cityscapes): " in text
    assert (root / "demo_tables" / "table4.md").read_text().startswith(text)
    plan = table_runs.describe(table_runs.plan(4, demo=True, workdir_root=str(root),
                                             overrides=overrides))  # fmt: skip
    assert all(line.startswith("reuse ") for line in plan)


def test_table2_has_an_adabn_row_from_the_source_only_dan_run():
    runs = table_runs.plan(2, demo=True, workdir_root="w")
    assert runs["table2_dan_source_only"].adabn and not runs["table2_dan_uada"].adabn
    assert "--adapt_statistics=target" in "\n".join(table_runs.describe(runs))
    config = runs["table2_dan_source_only"].config
    measured = {
        "table2_dan_source_only": (config, _fake_results(demo_target=0.30)),
        "table2_dan_source_only+adabn": (config, _fake_results(demo_target=0.33)),
    }
    lines = tables.render(2, measured, demo=True).splitlines()
    assert "| DAN | 34.8 | 30.0 | 38.2 | - |" in lines
    assert "| DAN + AdaBN (target statistics) | - | 33.0 | - | - |" in lines
    # One run per cell: the differences without an error bar, named by row and column.
    assert "- DAN + AdaBN (target statistics) - DAN (source only): +3.0" in lines


def test_run_all_adds_the_adabn_evaluation_of_a_finished_run(smoke_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    run = table_runs.Run(smoke_run.config, [], [workdir], ["smoke"], adabn=True)
    measured = table_runs.run_all({"smoke": run})
    config, adapted = measured["smoke+adabn"]
    assert measured["smoke"][1] == smoke_run.results  # the final evaluation, reused
    assert list(adapted) == ["demo_target"] and adapted["demo_target"]["statistics"] == "train"
    assert (tmp_path / "run" / "eval_32x64_adabn.json").is_file()
