"""The build's background thread (`bootstrap.build.pipeline.background`): a packed platform's workspace is
removed there while the build goes on, and the build does not end before it is."""

import logging
import threading

import pytest

from bootstrap.build.pipeline import background


def test_the_context_ends_only_when_the_work_handed_over_is_done() -> None:
    started, go_on, finished = threading.Event(), threading.Event(), []

    def job() -> None:
        started.set()
        go_on.wait(5)
        finished.append(threading.current_thread().name)

    with background() as later:
        later(job)
        assert started.wait(5)
        assert finished == []  # the caller went on while the job ran
        go_on.set()
    assert len(finished) == 1 and finished[0] != threading.current_thread().name


def test_a_failure_of_the_work_is_raised_when_the_context_ends() -> None:
    def job() -> None:
        raise OSError("cannot remove the workspace")

    with pytest.raises(OSError, match="cannot remove the workspace"), background() as later:
        later(job)


def test_when_the_build_fails_its_own_error_is_raised_and_the_works_failure_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def job() -> None:
        raise OSError("cannot remove the workspace")

    with caplog.at_level(logging.ERROR), pytest.raises(KeyboardInterrupt), background() as later:
        later(job)
        raise KeyboardInterrupt
    assert "cannot remove the workspace" in caplog.text
