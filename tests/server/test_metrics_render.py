"""The metrics registry alone: values read at scrape time, and the multiprocess rendering of
``jotkit serve --workers N`` (tests/backends/test_workers.py runs it across real workers)."""

from __future__ import annotations

from jotkit.server.metrics import MULTIPROCESS_ENV, Metrics


def test_function_gauges_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    streams = [3]
    metrics.function_gauge("jotkit_test_streams", "Open test streams.", lambda: float(streams[0]))
    metrics.count_status(204)
    text = metrics.render().decode()
    assert "jotkit_test_streams 3.0" in text
    assert 'jotkit_http_requests_total{status="2xx"} 1.0' in text
    streams[0] = 5
    assert "jotkit_test_streams 5.0" in metrics.render().decode()


def test_multiprocess_rendering_keeps_this_workers_function_gauges(tmp_path, monkeypatch) -> None:
    """With a multiprocess directory the counters come from the workers' files (none here) and
    the values read at scrape time are still this process's own."""
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    metrics = Metrics()
    assert metrics.multiprocess_dir == str(tmp_path)
    metrics.function_gauge("jotkit_test_backlog", "A backlog.", lambda: 7.0)
    assert "jotkit_test_backlog 7.0" in metrics.render().decode()
    metrics.close()  # this process's live gauges leave the shared files
    monkeypatch.delenv(MULTIPROCESS_ENV)
    assert Metrics().multiprocess_dir is None
