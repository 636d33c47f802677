"""Test setup: 8 fake CPU devices, so that sharded code runs on a real multi-device mesh.

XLA_FLAGS must be set before jax is imported anywhere, which is why it is done here.

Compiled programs go to one persistent compilation cache per test session, shared by the xdist
workers and by the subprocesses that tests start (they inherit the environment): the same tiny
models are compiled by many tests, and a cache hit is a file read instead of a compile.
"""

import ctypes
import gc
import os
import shutil
import tempfile

from xla_flags import xla_flags  # tests/ is on sys.path, as for every test module

# 8 fake devices, one thread per XLA computation, and the faster-compiling CPU emitters
# (xla_flags.py); a user's own XLA_FLAGS come first.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags()}".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Set once, in the process that starts the session; xdist workers inherit it.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="gen-test-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# gen's own cache (converted Inception weights, feature classifiers): a session folder, never
# the user's ~/.cache/gen.
os.environ.setdefault("GEN_CACHE_DIR", os.path.join(os.environ["JAX_COMPILATION_CACHE_DIR"], "gen"))

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests check numbers, not speed: most XLA optimizations only cost compile time here.
jax.config.update("jax_disable_most_optimizations", True)


def pytest_sessionfinish(session, exitstatus):
    del exitstatus
    _check_budget(session)
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):  # the controller cleans up
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drops JAX's in-memory caches after each test module.

    A worker runs hundreds of tests; without this it keeps every executable it ever compiled
    (gigabytes by the end). Later modules recompile what they need, mostly from the persistent
    cache above.
    """
    yield
    jax.clear_caches()
    gc.collect()
    _malloc_trim()


def _malloc_trim() -> None:
    """Hands freed heap pages back to the OS (glibc keeps them otherwise), so that a worker's
    memory follows what its current module holds rather than the most any module held."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


_GROUPING_BROKEN: list[str] = []


def pytest_collection_finish(session):
    """Notes when ``--dist loadgroup`` does not group: the suite's budget counts on the tests of
    an ``xdist_group`` sharing one worker (and its module-scoped trained fixtures)."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers
        return
    if any(item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid
           for item in session.items):
        _GROUPING_BROKEN.append(
            f"--dist loadgroup is not grouping tests under pytest {pytest.__version__} "
            "(pytest-xdist#1386); install the dev extra's pytest: pip install -e '.[dev]'.")


def pytest_runtest_setup(item):
    if _GROUPING_BROKEN and item.get_closest_marker("xdist_group") is not None:
        pytest.fail(_GROUPING_BROKEN[0], pytrace=False)


# --- The suite's time budget ---------------------------------------------------------------
# The default suite must stay fast as families are added: a test outside the slow marker whose
# setup, call and teardown together take longer than this fails the session. Make it faster,
# share its trained runs through fixtures, or mark it slow. GEN_TEST_BUDGET_S overrides the
# budget (0 turns the check off, e.g. on a machine loaded by other work).
TEST_BUDGET_S = float(os.environ.get("GEN_TEST_BUDGET_S", "20"))
_durations: dict[str, float] = {}
_slow: set[str] = set()
_over: list[tuple[float, str]] = []


def pytest_runtest_logreport(report):
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    if "slow" in report.keywords:
        _slow.add(report.nodeid)


def _check_budget(session) -> None:
    if TEST_BUDGET_S <= 0 or hasattr(session.config, "workerinput"):
        return
    _over.extend(sorted(((d, n) for n, d in _durations.items()
                         if d > TEST_BUDGET_S and n not in _slow), reverse=True))
    if _over and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _over:
        terminalreporter.section("test time budget", sep="=", red=True, bold=True)
        for d, n in _over:
            terminalreporter.write_line(f"{d:6.1f} s  {n}")
        terminalreporter.write_line(
            f"{len(_over)} test(s) took longer than {TEST_BUDGET_S:g} s (setup + call + "
            "teardown): make them faster, share trained runs through fixtures, or mark them slow.")
