"""Training under the faults real runs meet, each created for real: a second run in the same
workdir (two processes), SIGKILL in a checkpoint write (a stale lock and a torn checkpoint left
behind), SIGTERM and SIGINT, a checkpoint of another version's input pipeline, a full and a
read-only filesystem (a small tmpfs, where this machine lets the tests mount one), a checkpoint
path the filesystem cannot create.

The run that is killed, signalled or holds the lock is a process of its own; the command run
after it (the refused second run, the rerun that resumes) runs in this process (`run_main`).
Each is compared with `uninterrupted_run` (tests/conftest.py)."""

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import logging
from absl.testing import flagsaver
from conftest import (
    HANG_GUARD_SECONDS,
    checkpoint_values,
    finish_training,
    start_training,
    wait_for,
)

from uada import command_errors
from uada.data import pipeline
from uada.runs import evaluation, trainer, workdir_lock, write_errors
from uada.runs import workdir as workdir_lib

RERUN = "Rerun the same command to resume."


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run):
    """The final checkpoint of an uninterrupted `train_command` run."""
    return uninterrupted_run.final


def _assert_same_final_checkpoint(expected, workdir):
    actual = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-8"))
    assert sorted(actual) == sorted(expected)
    different = [key for key in expected if not np.array_equal(expected[key], actual[key])]
    assert not different, different[:10]


def _last_line(stderr):
    return stderr.strip().splitlines()[-1]


def _lock_text(workdir):
    with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
        return f.read()


# ------------------------------------------------------------------------------------------------
# One run at a time; SIGKILL, SIGTERM and SIGINT


def test_a_second_run_is_refused_and_killed_or_signalled_runs_resume_bit_identically(
    uninterrupted, data_dir, tmp_path
):
    """One workdir, three runs stopped at known points, each rerun of the same command resuming
    where the last stopped; the final weights equal an uninterrupted run's.

    1. SIGKILL inside the step-4 checkpoint write leaves its lock and a torn checkpoint; while the
       run trains, a second run in its workdir is refused and evaluation is allowed.
    2. The rerun takes the stale lock over, resumes from step 2 and gets SIGTERM once step 5 is
       trained: it finishes the step, checkpoints it (5 is no checkpoint step) and stops.
    3. The next rerun resumes from step 5 and gets SIGINT inside its step-6 checkpoint write: it
       completes that checkpoint and stops, writing no other.
    4. The last rerun trains to the end."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(signum) is signal.SIG_IGN:
            pytest.skip(
                f"{signum.name} is ignored in this process (a background job), so it is in the "
                "training process it starts, and uada keeps an ignored signal ignored"
            )
    workdir = str(tmp_path / "run")
    directory = os.path.join(workdir, "checkpoints")
    marker = os.path.join(workdir, "paused")
    # 1. ckpt-2 is complete, ckpt-4's files are written and the state file does not name them.
    first = start_training(workdir, data_dir, pause=("save", 4))
    wait_for(marker, first)

    second = finish_training(workdir, data_dir, check=False)
    assert second.returncode == 1
    assert re.fullmatch(
        rf"The workdir {re.escape(workdir)} is in use by another training run: host "
        rf"{re.escape(socket.gethostname())}, pid {first.pid}, started \S+ "
        rf"\({re.escape(workdir)}/\.lock\)\. Wait for it to end, or use another --workdir\.",
        _last_line(second.stderr),
    ), second.stderr[-3000:]
    assert "Traceback" not in second.stderr
    assert first.poll() is None  # the running one is untouched

    # Evaluation reads complete checkpoints and takes no lock: allowed while the run trains.
    results = evaluation.evaluate(
        workdir_lib.load_config(workdir), workdir, ["demo_target"], max_images=1,
        output_json=str(tmp_path / "during_training.json"), print_table=False,
    )  # fmt: skip
    assert results["demo_target"]["num_images"] == 1

    # SIGKILL mid-write leaves the lock file behind and, in the middle of a real write, a torn
    # data file: tear it.
    first.kill()
    first.communicate()
    with open(os.path.join(directory, "ckpt-4.data-00000-of-00001"), "r+b") as f:
        f.truncate(10)
    assert f'"pid": {first.pid}' in _lock_text(workdir)
    assert workdir_lib.latest_checkpoint(workdir) == f"{directory}/ckpt-2"
    os.remove(marker)

    # 2. and 3. (its step-4 write replaces the torn files).
    stderrs = []
    for signum, pause, step in ((signal.SIGTERM, ("step", 5), 5), (signal.SIGINT, ("save", 6), 6)):
        process = start_training(workdir, data_dir, pause=pause)
        wait_for(marker, process)
        process.send_signal(signum)
        os.remove(marker)  # the run goes on
        _, stderr = process.communicate(timeout=HANG_GUARD_SECONDS)
        assert process.returncode == 128 + signum, stderr[-3000:]  # 143, 130
        assert _last_line(stderr) == (
            f"Training stopped by {signum.name} at step {step} of 8; checkpoint "
            f"{directory}/ckpt-{step} written. {RERUN}"
        ), stderr[-3000:]
        assert "Traceback" not in stderr
        assert workdir_lib.latest_checkpoint(workdir) == f"{directory}/ckpt-{step}"
        assert _lock_text(workdir) == ""  # released
        stderrs.append(stderr)
    assert re.search(
        rf"Took over the stale lock {re.escape(workdir)}/\.lock of a run that ended without "
        rf"releasing it: host {re.escape(socket.gethostname())}, pid {first.pid}, started",
        stderrs[0],
    ), stderrs[0][-3000:]
    assert not os.path.exists(os.path.join(directory, "ckpt-7.index"))  # SIGINT wrote no other

    # 4. The rerun to the end (in this process: the resumption from disk is what is checked).
    finish_training(workdir, data_dir)
    assert _lock_text(workdir) == ""
    _assert_same_final_checkpoint(uninterrupted, workdir)


def _zipped_iterator(source, target=None, **kwargs):
    """The input position as uada checkpointed it before `pipeline.train_iterator`: one iterator
    over the zipped domains (the same elements)."""
    return iter(pipeline.train_dataset(source, target, **kwargs))


def test_a_checkpoint_of_another_input_pipeline_resumes_from_the_seed_bit_identically(
    uninterrupted, data_dir, tmp_path, monkeypatch
):
    # Its model, optimizers and step restore; its input position does not fit this pipeline's
    # iterators, so the streams are drawn again up to the step: the run still ends as the
    # uninterrupted one, bit for bit.
    workdir = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "train_iterator", _zipped_iterator)
        finish_training(workdir, data_dir, "--train_steps=4")
    ckpt4 = os.path.join(workdir, "checkpoints", "ckpt-4")
    result = finish_training(workdir, data_dir)
    assert (
        f"The input position saved in {ckpt4} does not fit this version's input pipeline"
        in result.stderr
    ), result.stderr[-3000:]
    assert f"Resumed from {ckpt4} at step 4." in result.stderr
    _assert_same_final_checkpoint(uninterrupted, workdir)
    # The checkpoints written since hold this pipeline's input position, one per domain.
    keys = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", "ckpt-8"))
    assert sorted(k for k in keys.get_variable_to_shape_map() if "ITERATOR_STATE" in k) == [
        f"data_iterator/{domain}/.ATTRIBUTES/ITERATOR_STATE" for domain in ("source", "target")
    ]


def test_only_the_input_position_may_fail_to_restore(tmp_path):
    # `trainer._restore` without training: a checkpoint whose input position does not fit
    # restores the rest and says so; one whose other objects do not fit is refused, the input
    # position's failure notwithstanding.
    images = {"image": np.zeros((2, 4, 4, 3), np.uint8), "label": np.zeros((2, 4, 4), np.uint8)}
    source = tf.data.Dataset.from_tensor_slices(images)
    target = source.map(lambda example: {"image": example["image"]})
    options = {"batch_size": 1, "shuffle_buffer": 2, "augment": False}
    old = _zipped_iterator(source, target, **options)
    saved = {"weights": tf.Variable([1.0, 2.0]), "data_iterator": old}
    prefix = tf.train.Checkpoint(**saved).save(str(tmp_path / "old"))  # as the manager saves

    def objects(size):
        return {"weights": tf.Variable(tf.zeros([size])),
                "data_iterator": pipeline.train_iterator(source, target, **options)}  # fmt: skip

    fitting = objects(2)
    assert not trainer._restore(tf.train.Checkpoint(**fitting), prefix, fitting)
    np.testing.assert_array_equal(fitting["weights"].numpy(), [1.0, 2.0])
    other = objects(3)
    with pytest.raises(workdir_lib.CorruptCheckpointError, match="another configuration"):
        trainer._restore(tf.train.Checkpoint(**other), prefix, other)
    # A checkpoint of this pipeline restores whole.
    prefix = tf.train.Checkpoint(**objects(2)).save(str(tmp_path / "new"))
    again = objects(2)
    assert trainer._restore(tf.train.Checkpoint(**again), prefix, again)


def test_a_lock_of_another_host_is_live_until_it_is_older_than_stale_after(tmp_path):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    path = os.path.join(workdir, workdir_lock.LOCK_FILE)
    record = '{"host": "node-17.cluster", "pid": 4242, "start_time": "2026-11-30T10:00:00+00:00"}'
    with open(path, "w") as f:
        f.write(record)
    # Touched recently (its owner's heartbeat): the flock may be local to that host, so live.
    with pytest.raises(
        workdir_lock.WorkdirLockedError,
        match=r"in use by another training run: host node-17\.cluster, pid 4242, started "
        r"2026-11-30T10:00:00\+00:00",
    ):
        workdir_lock.WorkdirLock(workdir, stale_after=120).acquire()
    # Not touched for longer than `stale_after`: stale, taken over.
    old = time.time() - 121
    os.utime(path, (old, old))
    with workdir_lock.WorkdirLock(workdir, stale_after=120) as lock:
        assert lock.took_over["host"] == "node-17.cluster"
        assert f'"pid": {os.getpid()}' in _lock_text(workdir)
    assert _lock_text(workdir) == ""


# ------------------------------------------------------------------------------------------------
# SIGTERM to one worker of a multi-worker run


def test_sigterm_to_one_worker_stops_every_multi_worker_at_one_checkpointed_step(
    data_dir, smoke_run, tmp_path, free_ports
):
    # Two processes under MultiWorkerMirroredStrategy; the non-chief gets SIGTERM. TensorFlow's
    # PreemptionCheckpointHandler makes both finish the same step and save it.
    workdir = str(tmp_path / "run")
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            start_training(
                workdir,
                data_dir,
                "--strategy=multi_worker",
                "--train_steps=60",
                TF_CONFIG=json.dumps(tf_config),
                CUDA_VISIBLE_DEVICES="",
            )  # fmt: skip
        )
    try:
        wait_for(os.path.join(workdir, "checkpoints", "checkpoint"), processes[0])
        processes[1].send_signal(signal.SIGTERM)
        stderrs = [process.communicate(timeout=HANG_GUARD_SECONDS)[1] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    steps = []
    for index, (process, stderr) in enumerate(zip(processes, stderrs, strict=True)):
        assert process.returncode == 143, f"worker {index}:\n{stderr[-3000:]}"
        assert "PreemptionCheckpointHandler: checkpoint saved" in stderr
        # The line may be followed by TensorFlow's C++ record of a failed heartbeat: a worker
        # still shutting down when worker 0, which hosts the coordination service, has exited.
        match = re.search(
            r"^Training stopped by SIGTERM at step (\d+) of 60; checkpoint (\S+) written\. "
            + re.escape(RERUN)
            + "$",
            stderr,
            re.MULTILINE,
        )
        assert match, f"worker {index}:\n{stderr[-3000:]}"
        assert "Traceback" not in stderr, f"worker {index}:\n{stderr[-3000:]}"
        steps.append(int(match[1]))
    assert steps[0] == steps[1] < 60
    assert workdir_lib.latest_checkpoint(workdir) == f"{workdir}/checkpoints/ckpt-{steps[0]}"
    assert _lock_text(workdir) == ""


# ------------------------------------------------------------------------------------------------
# Refused writes


@pytest.fixture
def small_filesystem(tmp_path):
    """A 5 MB tmpfs (one checkpoint of the smoke model takes 3.1 MB); skips where the machine
    does not let the tests mount one (it takes root and a mount namespace that allows it)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root and the `mount` command")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_full_disk_is_one_line_and_the_rerun_after_freeing_space_resumes(
    uninterrupted, data_dir, small_filesystem
):
    workdir = str(small_filesystem / "run")
    directory = os.path.join(workdir, "checkpoints")
    result = finish_training(workdir, data_dir, check=False)
    assert result.returncode == 1
    assert _last_line(result.stderr) == (
        f"Cannot write to {directory}: no space left on the device; the last complete "
        f"checkpoint, {directory}/ckpt-2, is intact. Fix the cause and rerun the same command to "
        "resume."
    ), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert workdir_lib.latest_checkpoint(workdir) == f"{directory}/ckpt-2"
    # More space (as if files had been deleted): the rerun resumes from ckpt-2 as if nothing
    # had happened.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_filesystem)], check=True)
    finish_training(workdir, data_dir)
    assert not [name for name in os.listdir(directory) if name.endswith("_temp")]
    _assert_same_final_checkpoint(uninterrupted, workdir)


def test_a_read_only_filesystem_is_one_line_for_training_and_evaluation(
    smoke_run, small_filesystem
):
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    workdir = str(small_filesystem / "run")
    with pytest.raises(write_errors.WorkdirWriteError) as error:
        trainer.train_and_evaluate(smoke_run.config, workdir)
    assert str(error.value) == (
        f"Cannot write to {workdir}: read-only file system; no checkpoint was completed yet. "
        f"Fix the cause and {RERUN[0].lower()}{RERUN[1:]}"
    )
    # An evaluation's output file.
    output = str(small_filesystem / "results" / "eval.json")
    with pytest.raises(write_errors.WorkdirWriteError) as error:
        evaluation.evaluate(
            smoke_run.config, smoke_run.workdir, ["demo_target"], max_images=1,
            output_json=output, print_table=False,
        )  # fmt: skip
    assert str(error.value).startswith(
        f"Cannot write to {small_filesystem}/results: read-only file system; the last complete "
        f"checkpoint, {smoke_run.workdir}/checkpoints/ckpt-4, is intact."
    )


def test_a_checkpoint_the_filesystem_cannot_create_keeps_the_last_one_intact(smoke_run, tmp_path):
    # Portable (no mount, works as root): the new checkpoint's temporary directory is a file.
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    directory = os.path.join(workdir, "checkpoints")
    with open(os.path.join(directory, "ckpt-6_temp"), "w") as f:
        f.write("in the way")
    with pytest.raises(write_errors.WorkdirWriteError) as error:
        trainer.train_and_evaluate(smoke_run.config.replace(train_steps=6), workdir)
    assert str(error.value) == (
        f"Cannot write to {directory}: a path component is a file, not a directory; the last "
        f"complete checkpoint, {directory}/ckpt-4, is intact. Fix the cause and rerun the same "
        "command to resume."
    )
    assert isinstance(error.value.__cause__, tf.errors.OpError)
    assert workdir_lib.latest_checkpoint(workdir) == f"{directory}/ckpt-4"
    assert _lock_text(workdir) == ""


def test_a_workdir_without_write_permission_is_one_line(smoke_run, tmp_path):
    # Root ignores permissions: the attempt runs as user `nobody` (65534), who may not write in
    # root's 0o700 pytest folders.
    if os.geteuid() != 0:
        pytest.skip("needs root, to switch to another user and back")
    parent = tmp_path / "root_only"
    parent.mkdir()
    os.seteuid(65534)
    try:
        with pytest.raises(write_errors.WorkdirWriteError) as error:
            trainer.train_and_evaluate(smoke_run.config, str(parent / "run"))
    finally:
        os.seteuid(0)
    assert str(error.value).startswith(
        f"Cannot write to {parent}/run: permission denied; no checkpoint was completed yet."
    )


def test_causes_are_named_for_os_and_tensorflow_errors():
    cause = write_errors.cause_of
    assert cause(OSError(errno.EACCES, "Permission denied")) == "permission denied"
    assert cause(OSError(errno.EDQUOT, "Disk quota exceeded")) == "disk quota exceeded"
    assert cause(tf.errors.UnknownError(None, None, "x.tmp; Read-only file system")) == (
        "read-only file system"
    )
    assert cause(tf.errors.PermissionDeniedError(None, None, "open x")) == "permission denied"
    assert cause(OSError(errno.ENOENT, "No such file")) is None
    assert cause(tf.errors.InvalidArgumentError(None, None, "bad shape")) is None
    assert cause(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")) is None


def test_reported_errors_are_one_line_and_verbosity_adds_the_traceback(capsys, caplog):
    error = write_errors.WorkdirWriteError("/w/checkpoints", "no space left on the device", None)
    for verbosity, traceback in ((logging.INFO, False), (logging.DEBUG, True)):
        caplog.clear()
        # flagsaver restores the flag as it was, its "default value" state included: app.run
        # raises an unset --verbosity to INFO, an explicitly set one it keeps.
        with flagsaver.flagsaver(verbosity=verbosity), pytest.raises(SystemExit) as exit_info:
            with command_errors.reported(write_errors.WorkdirWriteError):
                raise error
        assert exit_info.value.code == 1
        assert capsys.readouterr().err == f"{error}\n"
        assert any(record.exc_info for record in caplog.records) == traceback
