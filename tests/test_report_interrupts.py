"""An interrupt at any step of writing a result leaves a complete result or the previous one, and
no temporary file or folder.

A signal handler (Ctrl-C, SIGTERM) raises between two Python steps, so these properties raise an
interrupt at the n-th line any Python frame runs (``sys.settrace``), for every n from the first
line to past the last (a few thousand runs, seconds), around the same ``unfinished_removed``
block the command line runs its commands in.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from mksim import report

# an interrupt between ``open`` and its ``with`` (inside pathlib, say) leaves the file object to the
# garbage collector, which closes it and warns: expected here, where interrupts land on every line
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning",
                                        "ignore::ResourceWarning")


class _Interrupt(BaseException):
    """Stands for the exception a signal handler raises (KeyboardInterrupt, the CLI's SIGTERM)."""


def _run_interrupted(work, n: int | None) -> tuple[bool, int]:
    """Run ``work()`` inside ``unfinished_removed``, raising _Interrupt at the n-th line event
    (never, for None).  Returns (whether it was interrupted, the number of line events seen)."""
    seen, raised = [0], [False]

    def local(frame, event, arg):
        if event == "line":
            seen[0] += 1
            if n is not None and seen[0] == n:
                sys.settrace(None)
                raised[0] = True
                raise _Interrupt()
        return local

    def call(frame, event, arg):
        return local

    sys.settrace(call)
    try:
        with report.unfinished_removed():
            work()
    except BaseException:
        # the interrupt, or what it became: inside shutil.rmtree's cleanup, an interrupt between
        # its os.close and the line after makes rmtree close the descriptor twice (EBADF), so
        # the command says "cannot write"; what is on disk is what these properties check
        if not raised[0]:
            raise
        return True, seen[0]
    finally:
        sys.settrace(None)
    return False, seen[0]


def _write_report(dest: Path, tag: str) -> None:
    with report.report_folder(dest) as tmp:
        (tmp / "data.txt").write_text(tag * 100)
        (tmp / report.REPORT_MARKER).write_text(json.dumps({"tag": tag}))


def _report_state(dest: Path):
    """The tag of the complete report at ``dest`` (None if absent); fails on a partial one."""
    if not dest.exists():
        return None
    tag = json.loads((dest / report.REPORT_MARKER).read_text())["tag"]
    assert (dest / "data.txt").read_text() == tag * 100
    assert sorted(os.listdir(dest)) == ["data.txt", report.REPORT_MARKER]
    return tag


def _events(work_for) -> int:
    with tempfile.TemporaryDirectory() as d:
        return _run_interrupted(work_for(Path(d)), None)[1]


def _folder_case(previous: bool):
    def make(d: Path):
        if previous:
            _write_report(d / "rep", "old")
        return lambda: _write_report(d / "rep", "new")
    return make


def _every_interrupt(case, previous: bool):
    """For an interrupt at every line the write runs (and once with none): a fresh folder where
    ``case(previous)`` ran, and whether it was interrupted; then nothing may stay recorded."""
    events = _events(case(previous))
    for n in range(1, events + 2):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            interrupted, _ = _run_interrupted(case(previous)(d), n)
            yield d, interrupted
            assert not report.UNFINISHED, n


@pytest.mark.parametrize("previous", [False, True])
def test_interrupted_report_folder_is_complete_or_absent(previous):
    for d, interrupted in _every_interrupt(_folder_case, previous):
        state = _report_state(d / "rep")
        assert os.listdir(d) == (["rep"] if state else [])        # no .tmp, no .old
        if not interrupted:
            assert state == "new"
        elif previous:
            assert state in ("old", "new")      # never neither: the previous report is not lost
        else:
            assert state in (None, "new")


def _file_case(previous: bool):
    def make(d: Path):
        if previous:
            report.write_text(d / "out.json", "old" * 100)
        return lambda: report.write_text(d / "out.json", "new" * 100)
    return make


@pytest.mark.parametrize("previous", [False, True])
def test_interrupted_result_file_is_complete_or_absent(previous):
    for d, interrupted in _every_interrupt(_file_case, previous):
        names = os.listdir(d)
        assert names in ([], ["out.json"])
        text = (d / "out.json").read_text() if names else None
        allowed = {"new" * 100} | ({"old" * 100} if previous else {None})
        assert text in (allowed if interrupted else {"new" * 100})


def test_unfinished_removed_keeps_an_outer_callers_temporaries(tmp_path):
    """A command run inside an open report folder does not remove that folder when it fails."""
    with report.report_folder(tmp_path / "rep") as outer:
        try:
            with report.unfinished_removed():
                report.UNFINISHED.add(tmp_path / "inner.tmp")
                (tmp_path / "inner.tmp").mkdir()
                raise _Interrupt()
        except _Interrupt:
            pass
        assert outer.is_dir() and not (tmp_path / "inner.tmp").exists()
        (outer / report.REPORT_MARKER).write_text("{}")
    assert sorted(os.listdir(tmp_path)) == ["rep"]


def test_stale_files_are_the_writers_temporaries_only(tmp_path):
    """``remove_stale_files`` removes what a killed ``write_bytes`` leaves, and nothing else."""
    report.write_text(tmp_path / "kept.json", "{}")
    stale = report._temp_name(".kept.json.", ".tmp")
    others = [".kept.json.xyz.tmp", "notes.tmp", ".kept.json.0123456789.old", "b.json"]
    for name in [stale] + others:
        (tmp_path / name).write_text("x")
    (tmp_path / report._temp_name(".rep.", ".tmp")).mkdir()       # a folder: report_folder's, not a file
    report.remove_stale_files(tmp_path)
    left = sorted(os.listdir(tmp_path))
    assert stale not in left and set(others) | {"kept.json"} <= set(left) and len(left) == len(others) + 2
