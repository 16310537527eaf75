"""Test-session set-up, fixtures and helpers shared by every test module (the only conftest).

TensorFlow's logical devices must be configured before anything initialises TensorFlow's devices,
so `pytest_configure` does it, before any test module is collected: the single physical CPU is
split into two logical CPU devices, which the `tf.distribute` tests use as two replicas.

Test modules import the helpers below with `from conftest import ...`. The expensive fixtures are
session-scoped and trained in this process: `smoke_run` (a finished 4-step smoke run, with the demo
domains prepared once in `data_dir`) and `uninterrupted_run` (`train_command` run without
interruption). A command runs in this process through `run_main` unless the process
boundary is what a test is about (signals, locks, SIGKILL, a fresh interpreter); those start
`train_command` with `start_training`.
"""

import atexit
import contextlib
import gc
import importlib.metadata
import io
import json
import logging as std_logging
import os
import pathlib
import runpy
import socket
import subprocess
import sys
import time
import traceback
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _test_xla_flags(xla_flags, tensorflow_version):
    """`XLA_FLAGS` for the tests: the user's, plus what makes XLA compile the tests' steps faster
    without changing what they compute (a flag the user set is left as it is).

    - Without LLVM's optimizations (`--xla_backend_optimization_level=0`): the same HLO and the
      same IEEE arithmetic (fast math stays off, its default), compiled in about half the time.
    - With XLA's older loop-fusion code generator (`--xla_cpu_use_fusion_emitters=false`): the
      same fused HLO; a tiny UADA step compiles in 7.5 instead of 18 CPU-seconds. Only for
      TensorFlow 2.21, whose XLA has the flag: XLA stops at a flag it does not know.

    The XLA tests compare numbers within float32 error bounds, which hold whatever the
    summation order."""
    flags = [xla_flags.strip()] if xla_flags.strip() else []
    if "--xla_backend_optimization_level" not in xla_flags:
        flags.append("--xla_backend_optimization_level=0")
    if tensorflow_version.startswith("2.21.") and "--xla_cpu_use_fusion_emitters" not in xla_flags:
        flags.append("--xla_cpu_use_fusion_emitters=false")
    return " ".join(flags)


def _tensorflow_version():
    """The version of the `tensorflow` distribution uada requires, read without importing it
    ("" if it is not installed as one)."""
    try:
        return importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return ""


os.environ["XLA_FLAGS"] = _test_xla_flags(os.environ.get("XLA_FLAGS", ""), _tensorflow_version())

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import app, flags  # noqa: E402
from absl.testing import flagsaver  # noqa: E402

# TensorFlow, Keras and uada's training code are imported by `pytest_configure` in the processes
# that run tests, not in pytest-xdist's controller, which only hands tests out: the workers then
# start seconds sooner.
keras = tf = table_runs = None


def _is_xdist_controller(config):
    """Whether this process is pytest-xdist's controller, which hands tests to its workers and runs
    none (xdist's own rule, as its options stand once the command line is read)."""
    if getattr(config, "workerinput", None) is not None:  # a worker
        return False
    distributed = config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
    return distributed and not config.getoption("collectonly")


def pytest_configure(config):
    """Imports TensorFlow and splits the CPU into two logical devices, unless this process is
    pytest-xdist's controller (its workers run the tests and do it themselves)."""
    if _is_xdist_controller(config):
        return
    global keras, tf, table_runs
    import keras
    import tensorflow as tf

    from uada.runs import table_runs

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


# At exit, after pytest's own clean-up: the objects left are frozen out of Python's final garbage
# collections, which over a worker's heap of TensorFlow graphs took seconds; the process's memory
# goes back to the system whole.
atexit.register(gc.freeze)

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
PAUSE_TRAINING = pathlib.Path(__file__).with_name("cli") / "pause_training.py"
# Real dataset samples live in shared/fixtures beside the repository (shared/fixtures/README.md).
FIXTURES = REPO.parent / "shared" / "fixtures"
# A guard against a hung child process, not a time limit: a smoke training process takes about
# 20 s of CPU on an idle core, and several times that beside other work.
HANG_GUARD_SECONDS = 1800


@pytest.fixture
def fixtures_dir():
    """The folder of real dataset files; the test is skipped (with the reason) if it is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found beside the repository (looked for {FIXTURES})")
    return FIXTURES


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One `MirroredStrategy` over the two logical CPU devices, shared by every test.

    Strategies created one after another in a process start their collective instance keys at
    the same value, so a second strategy's all-reduce can meet the first one's cached collective
    of another shape ("Shape mismatch in the collective instance"); one shared strategy avoids it.
    """
    devices = [device.name for device in tf.config.list_logical_devices("CPU")][:2]
    if len(devices) < 2:
        pytest.skip("needs the two logical CPU devices configured in conftest")
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Each test starts with fresh Keras layer names and seeds. (Without a full garbage collection:
    Python's own collector frees what tests leave; a collection of the whole heap before each of
    the ~400 tests cost about a second each.)"""
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


def pytest_sessionfinish(session, exitstatus):
    """pytest exits with 5 when it collects no test; for uada's CI that is a failure, said so."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("\nERROR: pytest collected no tests; the uada test suite must never be empty.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def free_ports():
    """`free_ports(count)`: `count` distinct free TCP ports of localhost (for `TF_CONFIG`)."""

    def ports(count):
        sockets = [socket.socket() for _ in range(count)]
        for s in sockets:
            s.bind(("localhost", 0))
        found = [s.getsockname()[1] for s in sockets]
        for s in sockets:
            s.close()
        return found

    return ports


# ------------------------------------------------------------------------------------------------
# Comparing one training step with another computation of the same step.

# float32's unit roundoff: the relative error of one rounding.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
# Reductions chained through the tiny UADA model (resnet_tiny's 17 convolutions and 17
# normalizations, the extension, S and D), rounded up: in the forward pass, and in the backward
# pass to the first layer (two reductions per layer: over positions and over channels).
FORWARD_DEPTH = 25
BACKWARD_DEPTH = 50


def float32_error_bound(num_terms, depth=BACKWARD_DEPTH):
    """The relative difference allowed between two float32 computations of the same maths whose
    reductions are summed in different orders (another device split, another replica count,
    XLA's or a SavedModel's fused kernels, another batch size).

    A float32 sum of `num_terms` terms is within `num_terms * u` of the exact sum relative to the
    sum of its terms' magnitudes, whatever the order (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Sec. 4.2); the relative errors of `depth` chained reductions add, and two
    computations differ by at most the sum of their errors: `2 * depth * num_terms * u`. Take
    `num_terms` as the largest reduction (for a training step: the source pixels of the global
    batch, over which L_seg and the last layers' gradients sum).

    A wrong all-reduce (a mean for a sum), a replica left out or a dropped gradient term moves
    a training step's update by 20% or more of its norm (`test_scale.py` injects each): far above
    this bound for the tests' sizes.
    """
    return 2 * depth * num_terms * FLOAT32_UNIT_ROUNDOFF


def relative_error(actual, expected):
    """`||actual - expected|| / ||expected||` (Frobenius norms, in float64)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def relative_update_errors(initial, expected, actual, names):
    """`{name: ||actual - expected|| / ||expected - initial||}` of the floating variables the
    step changed: the difference of two updates relative to the update's norm."""
    errors = {}
    for name, start, a, b in zip(names, initial, expected, actual, strict=True):
        if not np.issubdtype(np.asarray(start).dtype, np.floating):
            continue
        start, a, b = (np.asarray(x, np.float64) for x in (start, a, b))
        if np.any(a != start):
            errors[name] = relative_error(b - start, a - start)
    return errors


def assert_same_step(initial, expected, actual, names, *, bound, logs=None,
                     log_keys=("seg_loss", "domain_loss", "confusion_loss", "loss")):  # fmt: skip
    """Two computations of one step from the same `initial` values: every variable's update
    (`expected`, `actual`: the values after the step) agrees within `bound` relative to its norm;
    variables the step did not change (counters included) are equal; `logs`, `(expected history,
    actual history)` of `fit`, agree within `bound` too (the losses `log_keys`)."""
    assert len(initial) == len(expected) == len(actual) == len(names)
    if logs is not None:
        for key in log_keys:
            np.testing.assert_allclose(logs[1][key], logs[0][key], rtol=bound, err_msg=key)
    errors = relative_update_errors(initial, expected, actual, names)
    assert errors, "the step changed no variable"
    worst = max(errors, key=errors.get)
    assert errors[worst] <= bound, f"{worst}: update differs by {errors[worst]:.2e} > {bound:.2e}"
    for name, a, b in zip(names, expected, actual, strict=True):
        if name not in errors:
            np.testing.assert_array_equal(b, a, err_msg=name)


# ------------------------------------------------------------------------------------------------
# One training step of the tiny models, the reference of the step tests.

TINY_SIZE = (32, 64)  # the smallest the output-space discriminator (5 halvings) takes


def tiny_examples(count, seed=0):
    """uint8 source images, labels (a band of 255) and target images, as prepared datasets hold,
    of `TINY_SIZE`."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (count, *TINY_SIZE, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (count, *TINY_SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (count, *TINY_SIZE), dtype=np.uint8)
    labels[:, :4] = 255
    labels[0, 4:12] = 255  # unequal valid-pixel counts per replica
    return source, labels, target


def global_batch(source, labels, target):
    """The single-device batch `((source, labels), target)` of `tiny_examples`."""
    return (source.astype("float32"), labels.astype("int32")), target.astype("float32")


def fit_steps(model, batch, steps=1):
    """`fit` for `steps` steps on `batch` repeated; returns the history."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0).history


def build_tiny_method(mode, **kwargs):
    """The model of a method of `uada.methods` on resnet_tiny with DAN, `TINY_SIZE` images."""
    from uada.methods import build_method_model

    return build_method_model(
        mode, "resnet_tiny", "dan", image_size=TINY_SIZE, steps_per_epoch=1, **kwargs
    )


@pytest.fixture(scope="session")
def method_steps():
    """`{mode: step}` for every method of `uada.methods`: one single-device float32 step of its
    tiny model (`build_tiny_method`, default optimizers) on `global_batch(*tiny_examples(2))`.
    A step holds the `model` (after the step), `weights` (its initial `get_weights()`),
    `initial` and `after` (every variable's value), their `names` and the `history` of `fit`.
    Shared by the methods' tests and the scale tests (bf16, multi-worker)."""
    from uada.methods import METHODS

    keras.config.set_dtype_policy("float32")
    examples = tiny_examples(2)
    steps = {}
    for mode in METHODS:
        keras.utils.set_random_seed(0)
        model = build_tiny_method(mode)
        model.compile()
        weights = model.get_weights()
        initial = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
        history = fit_steps(model, global_batch(*examples))
        steps[mode] = types.SimpleNamespace(
            model=model,
            examples=examples,
            weights=weights,
            initial=initial,
            after=[keras.ops.convert_to_numpy(v).copy() for v in model.variables],
            names=[v.path for v in model.variables],
            history=history,
        )
    return steps


# ------------------------------------------------------------------------------------------------
# The command lines: flags, a shared smoke run, commands in this process.


def parse_train_flags(*argv):
    """Parses training flags exactly as `python -m uada.train` does; returns the `Config`.

    `--flagfile=experiments/...` is the repository's, whatever the current directory.
    """
    argv = [a.replace("--flagfile=experiments/", f"--flagfile={EXPERIMENTS}/") for a in argv]
    return table_runs.parse_config(argv, experiments_dir=EXPERIMENTS)


def reset_process_state():
    """Undoes what a training run sets for its whole process: op determinism and the dtype
    policy (the seed is reset before every test)."""
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()
    keras.config.set_dtype_policy("float32")


class _LogLines(std_logging.Handler):
    """Writes the messages of the log records a command emits to `stream`, in order with what it
    prints (absl writes them to the command's stderr)."""

    def __init__(self, stream):
        super().__init__(std_logging.INFO)
        self.stream = stream

    def emit(self, record):
        self.stream.write(record.getMessage() + "\n")


def run_main(module, *argv, cwd=REPO, check=True):
    """Runs `python -m <module> argv...` (or `python <module> argv...` for a path ending in
    `.py`) in this process and returns what the command returned: `(returncode, stdout, stderr)`
    as a `subprocess.CompletedProcess`.

    The module's `__main__` block runs as the interpreter would run it (absl's `app.run` parses
    `argv` and calls `main`) from `cwd`, its stdout and stderr captured; stderr also holds the
    messages of the log records it wrote. An uncaught exception exits with 1 and its traceback
    on stderr, as in a process of its own. The flags the command defined, the environment, the
    current directory, `sys.path`, the log handlers and levels, op determinism and the dtype
    policy are restored afterwards.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    log = _LogLines(stderr)
    app.define_help_flags()  # once per process: kept, as the command's own flags are not
    saved_flags = flagsaver.save_flag_values()
    was_parsed = flags.FLAGS.is_parsed()
    saved_environ, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    saved_path = list(sys.path)
    script = str(module).endswith(".py")
    sys.argv = [str(module) if script else f"{module.replace('.', '/')}.py", *argv]
    # app.run's first call in a process installs absl's log handler and sets the log levels from
    # --verbosity; each command here gets that first call, as in a process of its own.
    root, absl_logger = std_logging.getLogger(), std_logging.getLogger("absl")
    handlers, root_level, absl_level = list(root.handlers), root.level, absl_logger.level
    app._run_init.done = app._register_and_parse_flags_with_usage.done = False
    # ... and absl's --verbosity as a new process has it: unset, so that app.run raises it to
    # INFO (a --verbosity a test set explicitly would otherwise stay, and hide the INFO lines).
    flags.FLAGS["verbosity"].unparse()
    root.addHandler(log)
    returncode = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                if script:
                    runpy.run_path(str(module), run_name="__main__")
                else:
                    runpy.run_module(module, run_name="__main__", alter_sys=False)
            except SystemExit as exit_:
                code = exit_.code
                returncode = code if isinstance(code, int) else (0 if code is None else 1)
            except Exception:
                traceback.print_exc()
                returncode = 1
    finally:
        os.chdir(saved_cwd)
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.environ.clear()
        os.environ.update(saved_environ)
        flagsaver.restore_flag_values(saved_flags)  # --verbosity sets the log levels: first
        flags.FLAGS.__dict__["__flags_parsed"] = was_parsed
        root.handlers[:] = handlers
        root.setLevel(root_level)
        absl_logger.setLevel(absl_level)
        reset_process_state()
    result = subprocess.CompletedProcess(
        [module, *argv], returncode, stdout.getvalue(), stderr.getvalue()
    )
    if check and returncode != 0:
        raise AssertionError(f"python -m {module} failed ({returncode}):\n{result.stderr[-4000:]}")
    return result


def run_command(module, *argv, env=None, check=True, cwd=REPO):
    """Runs `python -m <module> argv...` in a process of its own from `cwd` (default: the
    repository root); returns the CompletedProcess. For what only a fresh interpreter shows."""
    result = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python -m {module} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One data directory for every smoke run of the session (the demo domains prepared once)."""
    return tmp_path_factory.mktemp("uada_data")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir):
    """A finished 4-step smoke run (experiments/smoke.flags), trained in this process."""
    from uada.runs import trainer

    workdir = tmp_path_factory.mktemp("smoke") / "run"
    config = parse_train_flags(
        "--flagfile=experiments/smoke.flags",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        "--train_steps=4",
    )
    results = trainer.train_and_evaluate(config, str(workdir))
    return types.SimpleNamespace(config=config, workdir=str(workdir), results=results)


# ------------------------------------------------------------------------------------------------
# Folder datasets (uada.data.folder_card), written as a user writes them.


def write_folder_dataset(folder, *, classes, palette, images, labels, encoding="index",
                         img_suffix=".png", seg_map_suffix=".png", splits=None,
                         **card):  # fmt: skip
    """Writes a folder dataset and its dataset.json; returns the folder.

    Args:
        folder: where (created).
        classes, palette: the card's `classes` and `palette`.
        images: `{stem: uint8 [H, W, 3]}`, each written as `images/<stem><img_suffix>` (JPEG for
            `.jpg`, at quality 95, else PNG); a stem may hold subfolders.
        labels: `{stem: array}` written as `labels/<stem><seg_map_suffix>`: uint8 or uint16
            `[H, W]` (greyscale PNG) or `(array, "P")` (a palette PNG of those indices, its
            colours the card's palette) for `"index"`; uint8 `[H, W, 3]` colours for `"rgb"`.
        encoding: the card's `label_encoding`.
        img_suffix, seg_map_suffix: the card's suffixes.
        splits: `{split: [stem, ...]}` written as `<split>.txt` and named by the card, or None.
        **card: further card fields (`label_map`, `reduce_zero_label`).
    """
    from PIL import Image

    folder = pathlib.Path(folder)
    for stem, image in images.items():
        path = folder / "images" / f"{stem}{img_suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, **({"quality": 95} if img_suffix == ".jpg" else {}))
    for stem, label in labels.items():
        path = folder / "labels" / f"{stem}{seg_map_suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(label, tuple):  # a palette ("P") PNG of indices
            indices = np.ascontiguousarray(label[0], dtype=np.uint8)
            picture = Image.frombytes("P", indices.shape[::-1], indices.tobytes())
            picture.putpalette(np.resize(np.asarray(palette, np.uint8), (256, 3)).ravel().tolist())
            picture.save(path)
        else:
            Image.fromarray(label).save(path)
    fields = {
        "classes": list(classes), "palette": [list(c) for c in palette], "img_dir": "images",
        "ann_dir": "labels", "img_suffix": img_suffix, "seg_map_suffix": seg_map_suffix,
        "label_encoding": encoding, **card,
    }  # fmt: skip
    if splits is not None:
        for split, stems in splits.items():
            (folder / f"{split}.txt").write_text("\n".join(stems) + "\n")
        fields["splits"] = {split: f"{split}.txt" for split in splits}
    (folder / "dataset.json").write_text(json.dumps(fields, indent=2))
    return folder


# ------------------------------------------------------------------------------------------------
# Training as a separate process, for the tests that kill, signal or starve it.

# The flags of `train_command`: deterministic, 8 steps, checkpoints at 2, 4, 6, 8, a 1-image
# evaluation.
_TRAIN_FLAGS = ("--flagfile=experiments/smoke.flags", "--deterministic", "--train_steps=8",
                "--eval_max_images=1")  # fmt: skip


def train_command(workdir, data_dir, *extra, pause=None):
    """`python -m uada.train` on the smoke configuration (`_TRAIN_FLAGS`); `extra` flags
    override. With `pause=(WHERE, STEP)` the run pauses at step STEP, `"save"` inside its
    checkpoint write (its files written, the state file not naming them yet) or `"step"` once it
    is trained, after writing `WORKDIR/paused`, and goes on when the test removes that file
    (`cli/pause_training.py`)."""
    command = [sys.executable, "-m", "uada.train"]
    if pause is not None:
        where, step = pause
        marker = os.path.join(workdir, "paused")
        command = [sys.executable, str(PAUSE_TRAINING), where, str(step), marker]
    return [*command, f"--workdir={workdir}", f"--data_dir={data_dir}", *_TRAIN_FLAGS, *extra]


def start_training(workdir, data_dir, *extra, pause=None, **env):
    """Starts `train_command` (stderr piped, as text); `env` adds environment variables."""
    return subprocess.Popen(
        train_command(workdir, data_dir, *extra, pause=pause),
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process, timeout=HANG_GUARD_SECONDS):
    """Polls until `path` exists; fails if `process` exits first or the guard time runs out."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            raise AssertionError(
                f"training exited ({process.returncode}):\n{process.stderr.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def finish_training(workdir, data_dir, *extra, check=True):
    """Runs `train_command` in this process (`run_main`); returns its result, whose exit status is
    0 if `check`."""
    return run_main("uada.train", f"--workdir={workdir}", f"--data_dir={data_dir}", *_TRAIN_FLAGS,
                    *extra, check=check)  # fmt: skip


def checkpoint_values(prefix):
    """A checkpoint's tensors, except the iterator state and the save counter (bookkeeping)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if "ITERATOR_STATE" not in key and key not in ("_CHECKPOINTABLE_OBJECT_GRAPH",)
        and not key.startswith("save_counter")
    }  # fmt: skip


@pytest.fixture(scope="session")
def uninterrupted_run(tmp_path_factory, data_dir, smoke_run):
    """An uninterrupted `train_command` run (in this process; checkpoints 4, 6, 8 kept) and the
    values of its final checkpoint, the reference of every kill, signal, refused-write and
    resumption test. (`smoke_run` prepares the demo data first.)"""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    finish_training(workdir, data_dir)
    final = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-8"))
    return types.SimpleNamespace(workdir=str(workdir), final=final)
