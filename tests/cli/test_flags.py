"""Experiment files parse; bad flags and paths stop the commands with a message naming them."""

import dataclasses
import os

import pytest
from absl import flags
from conftest import EXPERIMENTS, REPO, parse_train_flags, run_main

from uada import config as config_lib
from uada import flags as uada_flags
from uada.runs import paper_tables

EXPERIMENT_FILES = sorted(EXPERIMENTS.glob("*.flags"))


def test_the_paper_experiments_are_all_there():
    names = {path.stem for path in EXPERIMENT_FILES}
    assert {"base", "demo", "smoke"} <= names
    assert len(names) >= 3 + 2 + 3 + 10 + 2 + 5


def _expected_result(experiment):
    """The "Expected result" an experiment file's header must have: where its paper numbers are
    in `TABLES` (the table and row, and the column where the row's cells are different runs)."""
    places = []
    for number, label, column, _ in paper_tables.cells_of(experiment):
        row_cells = dict(paper_tables.TABLES[number].rows)[label]
        same_run = all(cell is not None and cell.experiment == experiment for cell in row_cells)
        place = f"Table {number}, row '{label}'" + ("" if same_run else f", column '{column}'")
        if place not in places:
            places.append(place)
    return f"the paper's {'; '.join(places)} (% mIoU: `TABLES` in uada/runs/paper_tables.py)"


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda path: path.stem)
def test_experiment_file_parses(path, tmp_path, monkeypatch):
    if path.stem == "folder_example":  # its domains are the folders the example script writes
        run_main(str(REPO / "examples" / "make_folder_datasets.py"), cwd=tmp_path)
        monkeypatch.chdir(tmp_path)
    config = parse_train_flags(f"--flagfile=experiments/{path.name}", "--workdir=unused")
    assert isinstance(config, config_lib.Config)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#"), "an experiment file starts with its header comment"
    header = "\n".join(line for line in lines if line.startswith("#"))
    if path.stem != "base":
        assert "python -m uada.train --flagfile=experiments/" in header
        assert "# Expected result" in header
    if paper_tables.cells_of(path.stem):
        # The paper's numbers live in TABLES only: the header names the table and row.
        assert f"# Expected result: {_expected_result(path.stem)}." in lines
        paper = {f"{cell.paper:.1f}" for *_, cell in paper_tables.cells_of(path.stem)}
        assert not [number for number in paper if number in header], path.stem
        # The body starts by including base.flags, directly or through the files it includes.
        chain = [path.stem]
        while chain[-1] != "base":
            body = (EXPERIMENTS / f"{chain[-1]}.flags").read_text().splitlines()
            first = next(line for line in body if not line.startswith("#"))
            assert first.startswith("--flagfile=experiments/"), (chain, first)
            chain.append(first.removeprefix("--flagfile=experiments/").removesuffix(".flags"))
            assert len(chain) <= 4, chain
    for line in lines:  # absl would keep a trailing comment as part of the value
        assert line.startswith("#") or "#" not in line, line


def test_default_workdir_is_named_after_the_experiment():
    argv = ["uada.train", "--flagfile=experiments/demo.flags", "--seed=1"]
    assert uada_flags.default_workdir(argv) == os.path.join("workdirs", "demo")
    assert uada_flags.default_workdir(["uada.train", "--seed=1"]) is None


def test_flags_text_round_trip(tmp_path):
    config = parse_train_flags("--flagfile=experiments/smoke.flags", "--workdir=unused")
    (tmp_path / "flags.txt").write_text(config.to_flags_text())
    assert parse_train_flags(f"--flagfile={tmp_path / 'flags.txt'}", "--workdir=x") == config
    assert config_lib.Config.from_json(config.to_json()) == config
    assert set(config.to_dict()) == {field.name for field in dataclasses.fields(config)}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--norm=bn"], r"norm.*bn"),
        (["--image_size=384"], r"--image_size"),
        (["--image_size=100,200", "--output_stride=8"], r"divisible by --output_stride"),
        (["--source=cityscapes", "--target=cityscapes"], r"--source and --target"),
        (["--source=apolloscape"], r"no training split"),
        (["--target=demo_target"], r"demo domains"),
        (["--unseen=mapillary,kitti"], r"--unseen"),
        (["--source=no/such/folder"], r"--source must name domains.*dataset\.json"),
        (["--target=cityscape"], r"--target must name domains"),
        (["--backbone=resnet_tiny", "--weights=imagenet"], r"--weights=none"),
        (["--weights=/no/such/weights.h5"], r"--weights"),
        (["--lr_decay_epochs=16,9"], r"--lr_decay_epochs"),
        (["--batch_size=0"], r"batch_size"),
        (["--lambda_conf=-1"], r"lambda_conf"),
    ],
)
def test_bad_training_flags_are_named(argv, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        parse_train_flags("--flagfile=experiments/base.flags", "--workdir=x", *argv)


def test_resnet_tiny_takes_a_weights_file(tmp_path):
    path = tmp_path / "resnet_tiny.weights.h5"
    path.write_bytes(b"")  # the flags check that it exists; build_backbone reads it
    config = parse_train_flags(
        "--flagfile=experiments/demo.flags", "--workdir=x", f"--weights={path}"
    )
    assert (config.backbone, config.weights) == ("resnet_tiny", str(path))
    with pytest.raises(flags.IllegalFlagValueError, match="--weights"):
        parse_train_flags("--flagfile=experiments/demo.flags", "--workdir=x",
                          f"--weights={tmp_path / 'missing.weights.h5'}")  # fmt: skip


def test_unknown_flag_in_an_experiment_file_fails(tmp_path):
    path = tmp_path / "bad.flags"
    path.write_text("--flagfile=experiments/base.flags\n--lambda=0.1\n")
    with pytest.raises(flags.UnrecognizedFlagError, match="lambda"):
        parse_train_flags(f"--flagfile={path}", "--workdir=x")


def test_commands_exit_nonzero_naming_the_flag_or_file(tmp_path):
    result = run_main("uada.train", "--flagfile=experiments/smoke.flags", "--norm=bn",
                         "--workdir=x", check=False)  # fmt: skip
    assert result.returncode != 0
    assert "--norm" in result.stderr and "bn" in result.stderr
    result = run_main("uada.train", "--norm=dan", check=False)
    assert result.returncode != 0 and "--workdir" in result.stderr
    missing = tmp_path / "no_run"
    result = run_main("uada.evaluate", f"--workdir={missing}", check=False)
    assert result.returncode != 0 and str(missing) in result.stderr
    tmp_path.joinpath("run").mkdir()
    result = run_main("uada.export", f"--workdir={tmp_path / 'run'}", "--output=o", check=False)
    assert result.returncode != 0 and "config.json" in result.stderr
    result = run_main("uada.predict", f"--workdir={tmp_path / 'run'}",
                         f"--input={tmp_path / 'none.png'}", "--output=o", check=False)  # fmt: skip
    assert result.returncode != 0 and "--input" in result.stderr


def test_flags_are_generated_from_the_config_fields():
    from uada import names
    from uada.data import builders, demo_generator, domains

    flag_values = flags.FlagValues()
    uada_flags.define_train_flags(flag_values)
    for field in dataclasses.fields(config_lib.Config):
        flag = flag_values[field.name]
        assert flag.help.endswith(config_lib.Config.help(field.name))  # after any "<a|b>: "
    assert uada_flags.train_config(flag_values) == config_lib.Config()  # the fields' defaults
    # Each closed set is the one of `uada.names`, in its order.
    for name, owner in [
        ("mode", names.MODES),
        ("norm", names.NORMALIZATIONS),
        ("backbone", names.BACKBONES),
        ("output_stride", names.OUTPUT_STRIDES),
        ("strategy", names.STRATEGIES),
        ("mixed_precision", names.PRECISIONS),
        ("eval_resolution", names.RESOLUTIONS),
    ]:
        assert flag_values[name].parser.enum_values == [str(v) for v in owner], name
    # The tables that implement a set keyed by its names hold exactly its names.
    assert tuple(domains._DOMAINS) == names.DATASETS
    assert tuple(config.name for config in builders.common.CONFIGS) == names.RESOLUTIONS
    assert (*demo_generator.SHIFT_GROUPS, *demo_generator.FACTORS) == names.SHIFT_NAMES


def test_dan_target_epsilon_flag_reaches_every_dan_layer_of_r():
    from uada.layers import DomainAgnosticNormalization
    from uada.runs import workdir as workdir_lib

    def target_epsilons(config):
        model = workdir_lib.build_model(config)
        layers = [*model.representation.get_layer("resnet_tiny_os8").layers,
                  *model.representation.layers, *model.segmentation_head.layers]  # fmt: skip
        return {layer.name: layer.target_epsilon for layer in layers
                if isinstance(layer, DomainAgnosticNormalization)}  # fmt: skip

    argv = ("--flagfile=experiments/smoke.flags", "--workdir=x")
    default = target_epsilons(parse_train_flags(*argv))
    assert len(default) == 19 and set(default.values()) == {None}  # 17 + extension + S
    original = target_epsilons(parse_train_flags(*argv, "--dan_target_epsilon=1e-9"))
    # R's DAN layers take the original's 1e-9; S's DAN keeps its 1e-3 for every sample.
    assert original.pop("head_norm") is None
    assert len(original) == 18 and set(original.values()) == {1e-9}


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--checkpoints=last:3", "--average"], None),
        (["--checkpoints=last:3"], "--average and --checkpoints=last:K go together"),
        (["--average"], "--average and --checkpoints=last:K go together"),
        (["--checkpoints=last:0", "--average"], "'latest', 'all' or 'last:K'"),
        (["--checkpoints=first:3"], "'latest', 'all' or 'last:K'"),
        (["--checkpoints=last:3", "--average", "--checkpoint=x"], "neither --checkpoint"),
    ],
)
def test_evaluate_averages_the_last_checkpoints_only_when_asked(argv, error, tmp_path):
    flag_values = flags.FlagValues()
    uada_flags.define_evaluate_flags(flag_values)
    argv = ["evaluate", f"--workdir={tmp_path}", *argv]
    if error is None:
        flag_values(argv)
        assert (flag_values.checkpoints, flag_values.average) == ("last:3", True)
    else:
        with pytest.raises(flags.IllegalFlagValueError, match=error):
            flag_values(argv)


def test_flags_restoring_the_original_scripts_values_reach_the_model():
    # docs/FIDELITY.md items 2, 13 and 14: the scripts' schedule, lambda and clipping by flag.
    from uada.runs import trainer
    from uada.runs import workdir as workdir_lib

    config = parse_train_flags(
        "--flagfile=experiments/smoke.flags", "--workdir=x", "--lr_decay_epochs=8,15",
        "--lambda_conf=3e-4", "--gradient_clip=none",
    )  # fmt: skip
    model = workdir_lib.build_model(config, steps_per_epoch=10)
    trainer.compile_model(model, config, steps_per_epoch=10)
    assert (model.lambda_conf, model.gradient_clip) == (3e-4, None)
    for optimizer in (model.seg_optimizer, model.domain_optimizer):
        rates = []
        for step in (79, 80, 149, 150):  # halved after epochs 8 and 15 of 10 steps
            optimizer.iterations.assign(step)
            rates.append(float(optimizer.learning_rate))
        assert rates == pytest.approx([0.01, 0.005, 0.005, 0.0025])
