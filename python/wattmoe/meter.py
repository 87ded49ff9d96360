"""wattmoe.EnergyMeter: energy over named windows of your own code, like Zeus's ZeusMonitor.

    meter = wattmoe.EnergyMeter("nvml")          # or "rapl" (CPU packages), or "sim" (the simulated GPU)
    meter.begin_window("prefill")
    ...                                          # the work to measure
    w = meter.end_window("prefill")              # {"joules": ..., "seconds": ..., "mean_w": ..., ...}

It is the engine's EnergyMeter (energy/meter.h): the energy counter where the sensor has one (NVML, RAPL), else
integrated power; a real sensor is sampled on a background thread (10–50 Hz), so end_window waits up to one sample
interval for the window to be final. Windows nest: the innermost ends first (ending another raises wattmoe.Error).
The simulated GPU keeps virtual time, moved only by sim_run(flops, bytes) and sim_idle(seconds), so its windows are
deterministic; sim_energy_j is its exact energy, which the counter-based window follows to a counter tick.
"""
import contextlib

from . import _core


class EnergyMeter:
    def __init__(self, sensor="nvml", *, gpu=0, sim_params=None, sample_hz=20.0):
        """sensor: "nvml" (GPU `gpu`), "rapl" or "sim" (sim_params: a simulated-GPU parameter JSON file)."""
        self._core = _core.EnergyMeter(sensor, gpu, sim_params or "", sample_hz)

    sensor = property(lambda self: self._core.sensor, doc="the sensor's name (e.g. 'sim:h100-like')")
    capabilities = property(lambda self: self._core.capabilities, doc="the fields the sensor provides")
    depth = property(lambda self: self._core.depth, doc="windows open now")

    def begin_window(self, name):
        self._core.begin_window(name)

    def end_window(self, name):
        """Ends the innermost window, which must be `name`; returns its result: name, depth, begin_s, end_s, seconds,
        joules (by method: "counter" or "integrated"), joules_counter, joules_integrated, mean_w, peak_w,
        max_temp_c, reason_seconds (seconds under each clock-event reason), samples, warning, complete, covered_s,
        error (fields the sensor lacks are None)."""
        return self._core.end_window(name)

    @contextlib.contextmanager
    def window(self, name):
        """with meter.window("step") as w: ... — afterwards w["joules"] etc. hold the window's result."""
        result = {}
        self.begin_window(name)
        try:
            yield result
        finally:
            result.update(self.end_window(name))

    def sim_run(self, flops, bytes):
        """The simulated GPU runs work of this size; returns its simulated seconds."""
        return self._core.sim_run(flops, bytes)

    def sim_idle(self, seconds):
        self._core.sim_idle(seconds)

    @property
    def sim_energy_j(self):
        return self._core.sim_energy_j
