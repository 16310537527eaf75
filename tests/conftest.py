"""Test-session set-up shared by every test module.

TensorFlow's logical devices must be configured before anything initialises TensorFlow's devices,
so this runs at import time, before any test module is collected: the single physical CPU is split
into two logical CPU devices, which the `tf.distribute` tests use as two replicas.
"""

import os
import pathlib
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

# Real dataset samples live in shared/fixtures beside the repository (shared/fixtures/README.md).
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures"


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
    """Each test starts with fresh Keras layer names and seeds."""
    import keras

    keras.utils.clear_session()
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
