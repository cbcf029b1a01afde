"""RAPL and NVML readers against fake counter files and a fake NVML; "unavailable" where
there is no meter."""
import os

import pytest

from cnnlab.bench.meters import NvmlMeter, RaplMeter, Unavailable, open_meter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _domain(root, entry, name, energy, max_range):
    d = root / entry
    d.mkdir()
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


def test_rapl_sums_packages_and_ignores_subdomains(tmp_path):
    p0 = _domain(tmp_path, "intel-rapl:0", "package-0", 1_000_000, 10**12)
    core = _domain(tmp_path, "intel-rapl:0:0", "core", 5, 10**12)
    p1 = _domain(tmp_path, "intel-rapl:1", "package-1", 0, 10**12)
    (tmp_path / "dram-foo").mkdir()
    clock = Clock()
    m = RaplMeter(str(tmp_path), clock=clock)
    assert [n for n, _ in m.domains] == ["package-0", "package-1"]
    m.start()
    (p0 / "energy_uj").write_text("3500000\n")  # +2.5 J
    (p1 / "energy_uj").write_text("1500000\n")  # +1.5 J
    (core / "energy_uj").write_text("999999999\n")  # inside package-0: must not count twice
    clock.now += 2.0
    out = m.stop()
    assert out["energy_j"] == pytest.approx(4.0) and out["seconds"] == pytest.approx(2.0)
    assert out["wraps"] == 0 and "package-0+package-1" in out["source"]


def test_rapl_counter_wraps(tmp_path):
    max_range = 262_143_328_850  # a real max_energy_range_uj
    p0 = _domain(tmp_path, "intel-rapl:0", "package-0", max_range - 1_000_000, max_range)
    m = RaplMeter(str(tmp_path), clock=Clock())
    m.start()
    (p0 / "energy_uj").write_text(f"{max_range - 200_000}\n")  # +0.8 J
    m.sample()
    (p0 / "energy_uj").write_text("300000\n")  # wrapped: +0.2 J to the top, +0.3 J after 0
    m.sample()
    (p0 / "energy_uj").write_text("1300000\n")  # +1.0 J
    out = m.stop()
    assert out["energy_j"] == pytest.approx(0.8 + 0.5 + 1.0)
    assert out["wraps"] == 1


def test_rapl_missing_is_unavailable(tmp_path):
    got = open_meter("cpu", rapl_root=str(tmp_path / "nothing"))
    assert isinstance(got, Unavailable) and "does not exist" in got.reason
    (tmp_path / "empty").mkdir()
    got = open_meter("cpu", rapl_root=str(tmp_path / "empty"))
    assert isinstance(got, Unavailable) and "no RAPL package domain" in got.reason


def test_rapl_root_only_counters_are_unavailable(tmp_path, monkeypatch):
    p0 = _domain(tmp_path, "intel-rapl:0", "package-0", 1, 10**12)
    if os.geteuid() != 0:
        os.chmod(p0 / "energy_uj", 0o000)
    else:  # root reads any file: make the read fail as it does for a user since 2020
        import cnnlab.bench.meters as meters

        def denied(path):
            raise PermissionError(13, "Permission denied", path)
        monkeypatch.setattr(meters, "_read_int", denied)
    got = open_meter("cpu", rapl_root=str(tmp_path))
    assert isinstance(got, Unavailable) and "not readable by this user" in got.reason


def test_rapl_readable_is_a_meter(tmp_path):
    _domain(tmp_path, "intel-rapl:0", "package-0", 1, 10**12)
    assert isinstance(open_meter("cpu", rapl_root=str(tmp_path)), RaplMeter)


class FakeNvml:
    """NVML's calls as pynvml names them; energy in mJ, power in mW."""

    class NotSupported(Exception):
        pass

    def __init__(self, energy_counter=True):
        self.energy_mj = 5_000_000
        self.power_mw = 250_000
        self.has_counter = energy_counter
        self.inited = False

    def nvmlInit(self):
        self.inited = True

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise RuntimeError("Invalid Argument")
        return "gpu0"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.has_counter:
            raise self.NotSupported("Not Supported")
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw


def test_nvml_energy_counter():
    nvml, clock = FakeNvml(), Clock()
    m = NvmlMeter(nvml, 0, clock=clock)
    m.start()
    nvml.energy_mj += 12_345  # 12.345 J
    clock.now += 0.5
    out = m.stop()
    assert out["energy_j"] == pytest.approx(12.345) and out["seconds"] == pytest.approx(0.5)
    assert "counter" in out["source"]


def test_nvml_power_is_integrated_without_a_counter():
    nvml, clock = FakeNvml(energy_counter=False), Clock()
    m = NvmlMeter(nvml, 0, clock=clock)
    m.start()
    clock.now += 1.0
    nvml.power_mw = 100_000
    m.sample()  # 100 W over 1 s
    clock.now += 2.0
    nvml.power_mw = 300_000
    out = m.stop()  # 300 W over 2 s
    assert out["energy_j"] == pytest.approx(100 + 600)
    assert "sampled" in out["source"]


def test_nvml_unavailable_reasons():
    got = open_meter("cuda:3", nvml=FakeNvml())
    assert isinstance(got, Unavailable) and "GPU 3" in got.reason
    assert isinstance(open_meter("cuda", nvml=FakeNvml()), NvmlMeter)


def test_this_machine_reports_a_reason_when_it_has_no_meter():
    got = open_meter("cpu")
    if isinstance(got, Unavailable):
        assert got.reason  # never an empty reason
    else:
        assert got.source.startswith("RAPL")
