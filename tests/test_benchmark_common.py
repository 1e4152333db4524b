"""benchmarks/common.py: what the benchmarks print beside their tables."""

import os
import time

from benchmarks import common


def test_steal_is_read_from_the_eighth_column_of_the_cpu_line(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  4705 356 584 3699176 23 0 12 42 0 0\ncpu0 2000 100 300 1800000 10 0 6 20 0 0\n")
    assert common.steal_ticks(str(stat)) == 42
    stat.write_text("cpu  4705 356 584 3699176\n")  # a kernel too old to count steal
    assert common.steal_ticks(str(stat)) is None
    assert common.steal_ticks(str(tmp_path / "absent")) is None


def meter_that_saw(monkeypatch, percent: float) -> common.StealMeter:
    """A meter started 10 s ago, whose host has since taken ``percent`` of the CPU."""
    meter = common.StealMeter()
    meter.start_ticks, meter.start_time = 1000, time.monotonic() - 10
    ticks = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1) * 10 * percent / 100
    monkeypatch.setattr(common, "steal_ticks", lambda: 1000 + round(ticks))
    return meter


def test_the_steal_line_warns_only_when_the_host_took_enough_to_skew_ratios(monkeypatch):
    quiet = meter_that_saw(monkeypatch, 0.5).line()
    assert "0.5% of the CPU" in quiet and "skew" not in quiet
    busy = meter_that_saw(monkeypatch, 17.0).line()
    assert "17.0% of the CPU" in busy and "skew the ratios" in busy
    monkeypatch.setattr(common, "steal_ticks", lambda: None)
    assert common.StealMeter().line() == "Host steal: not counted on this system."
