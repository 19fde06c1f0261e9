"""The allocator benchmark starts each child with one allocator's settings only."""

import ctypes.util

from airinfer.benchmarks import allocator

STARTED_WITH = {"PATH": "/bin", "LD_PRELOAD": "libother.so", "MALLOC_CONF": "narenas:1"}


def test_glibc_runs_without_what_this_process_was_preloaded_with():
    assert allocator.preload_environment("glibc") == {}
    assert allocator._child_environment("glibc", STARTED_WITH) == {"PATH": "/bin"}


def test_a_preloaded_allocator_replaces_the_inherited_settings(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so.2")
    assert allocator._child_environment("jemalloc", STARTED_WITH) == {
        "PATH": "/bin",
        "LD_PRELOAD": "libjemalloc.so.2",
        "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1",
    }
    # tcmalloc has no settings of its own: an inherited MALLOC_CONF (jemalloc's) goes
    assert allocator._child_environment("tcmalloc", STARTED_WITH) == {
        "PATH": "/bin",
        "LD_PRELOAD": "libtcmalloc_minimal.so.2",
    }


def test_an_allocator_not_installed_is_not_run(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert allocator.preload_environment("jemalloc") is None
    assert allocator._child_environment("jemalloc", STARTED_WITH) is None
