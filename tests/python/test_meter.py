"""wattmoe.EnergyMeter windows on the simulated GPU (deterministic virtual time), nesting, and its errors."""
import pytest

import wattmoe


def test_sim_window():
    meter = wattmoe.EnergyMeter("sim")
    assert meter.sensor.startswith("sim:") and "energy" in meter.capabilities
    meter.sim_idle(0.5)
    e0 = meter.sim_energy_j
    meter.begin_window("work")
    seconds = meter.sim_run(flops=2e14, bytes=4e11) + 2.0
    meter.sim_idle(2.0)
    w = meter.end_window("work")
    true_j = meter.sim_energy_j - e0
    assert w["name"] == "work" and w["complete"] and w["method"] == "counter"
    assert w["seconds"] == pytest.approx(seconds, rel=1e-9)
    # The energy counter ticks every 0.1 s, like NVML's (the default simulated GPU): a window sampled only at its ends
    # is right to within one tick of the power there (idle, 80 W) — out of ~370 J here.
    assert abs(w["joules"] - true_j) <= 0.1 * 80 + 1e-6 and true_j > 300
    assert w["mean_w"] == pytest.approx(w["joules"] / w["seconds"], rel=1e-12)


def test_sim_windows_nest_and_repeat():
    def measure():
        meter = wattmoe.EnergyMeter("sim")
        with meter.window("outer") as outer:
            meter.sim_run(1e13, 1e10)
            with meter.window("inner") as inner:
                meter.sim_idle(1.0)
            assert meter.depth == 1
        return outer, inner

    (o1, i1), (o2, i2) = measure(), measure()
    assert o1 == o2 and i1 == i2  # virtual time: the same calls, the same numbers
    assert i1["depth"] == 1 and o1["depth"] == 0 and o1["joules"] > i1["joules"] > 0


def test_meter_errors():
    meter = wattmoe.EnergyMeter("sim")
    meter.begin_window("a")
    with pytest.raises(wattmoe.Error, match="'b'"):
        meter.end_window("b")  # only the innermost window can end
    with pytest.raises(wattmoe.Error, match="sensor 'x': expected nvml, rapl or sim"):
        wattmoe.EnergyMeter("x")
    with pytest.raises(wattmoe.Error, match="sim_idle: seconds must be finite"):
        meter.sim_idle(float("nan"))
    assert issubclass(wattmoe.Error, RuntimeError)


@pytest.mark.parametrize("sensor", ["nvml", "rapl"])
def test_real_sensors_or_their_reason(sensor):
    """On a machine without the sensor the engine's reason comes as wattmoe.Error; with it, a window measures."""
    try:
        meter = wattmoe.EnergyMeter(sensor)
    except wattmoe.Error as e:
        assert str(e).startswith({"nvml": "NVML not available", "rapl": "sensor 'rapl': "}[sensor]), str(e)
        return
    with meter.window("sleep") as w:
        __import__("time").sleep(0.3)
    assert w["seconds"] >= 0.3 and w["joules"] >= 0
    with pytest.raises(wattmoe.Error, match="need sensor='sim'"):
        meter.sim_idle(1)
