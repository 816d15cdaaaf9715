import threading

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every sensor test must join the threads it started."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads still running after test: {[t.name for t in leaked]}"
