"""wattmoe.Model: a checkpoint loaded once, and the engine's jobs on it (eval, run, generate, forward).

Options are keyword arguments named like the command line's flags without the dashes ('-' written '_'):
power_budget_w for --power-budget-w, max_tokens for --max-tokens; switches that the CLI negates are booleans here
(thermal_guard=False for --no-thermal-guard). Routing is one argument, `policy`: a policy name ("topk", "cost",
"top_p", "skip", "budget", "mask") or a dict of the routing flags ({"policy": "cost", "lambda": 2.0,
"expert_shape": "4096x14336"}). Test-time training is `ttt`: None (off), True, or a dict of the --ttt-*/--lora-* flags
without the --ttt- prefix ({"lr": 1e-3, "groups": "router,norms", "lora_rank": 4}). The names come from the tables the
CLI registers its flags from (src/eval/option_table.h), so they are the CLI's; an old flag's name still works with
the same meaning (power_budget for power_budget_w, energy_budget for energy_budget_j_per_token, top_p for
route_top_p in a routing dict), and giving both is an error. The engine checks every value (type, NaN, range) and
raises wattmoe.Error naming the option.
"""
import os
import queue
import threading
import warnings
from pathlib import Path

import numpy as np

from . import _core
from ._core import Error

_SHIPPED = Path("models") / "kjv-small"


def default_model_dir():
    """The model Model.load() reads when given no directory: $WATTMOE_MODEL when set; else the model installed with
    the package (pip install .); else models/kjv-small in a source tree above the package (a build tree)."""
    env = os.environ.get("WATTMOE_MODEL")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for base in (here, *here.parents):
        if (base / _SHIPPED / "config.json").is_file():
            return str(base / _SHIPPED)
    raise Error("no model directory given and the shipped models/kjv-small was not found: pass Model.load(DIR) or set "
                "WATTMOE_MODEL")


def _routing(policy):
    if policy is None:
        return {}
    if isinstance(policy, str):
        return {"policy": policy}
    if isinstance(policy, dict):
        return dict(policy)
    raise Error(f"policy: expected a policy name or a dict of routing options, got {policy!r}")


def _text_or_path(source):
    """A str is the text itself; a pathlib.Path (any os.PathLike) names a text file the engine reads."""
    if isinstance(source, str):
        return source, None
    if isinstance(source, os.PathLike):
        return None, os.fspath(source)
    raise Error(f"expected the text (str) or a path to a text file (pathlib.Path), got {type(source).__name__}")


def _options(**kw):
    return {k: v for k, v in kw.items() if v is not None}


class RunStream:
    """A budgeted run (`wattmoe run`) as it goes. Iterating runs it on a worker thread in step with the loop: each
    window's record (a dict equal to that window's line of `wattmoe run --log`) is yielded as the window finishes,
    and the next window runs when the loop asks for the next record. `summary` holds the run's summary (the CLI's
    summary JSON) once the iteration ends. Leaving the loop early (break) ends the run after the window just
    yielded; the summary then covers the windows run. A run can be iterated once.

    Ctrl-C during the run ends it after the current window, as the CLI does (the summary says "interrupted"), and then
    raises KeyboardInterrupt. A plant that failed mid-run raises wattmoe.Error after the records it measured.
    """

    def __init__(self, start):
        self._start = start
        self._iterated = False
        self.summary = None

    def __iter__(self):
        if self._iterated:
            raise Error("this run was iterated already: call model.run(...) again for another")
        self._iterated = True
        return self._records()

    def _records(self):
        records, resume, stop, end = queue.Queue(), threading.Semaphore(0), threading.Event(), object()
        outcome = {}

        def on_record(record):  # on the worker thread, after each window
            records.put(record)
            resume.acquire()  # until the loop asks for the next record (or has left)
            return not stop.is_set()

        def work():
            try:
                outcome["summary"] = self._start(on_record)
            except BaseException as e:  # re-raised on the caller's thread
                outcome["error"] = e
            finally:
                records.put(end)

        worker = threading.Thread(target=work, name="wattmoe-run", daemon=True)
        worker.start()
        try:
            while (record := records.get()) is not end:
                yield record
                resume.release()
        finally:
            stop.set()
            resume.release()
            worker.join()
            self.summary = outcome.get("summary")
        if "error" in outcome:
            raise outcome["error"]
        if "interrupted" in self.summary:
            raise KeyboardInterrupt(f"run interrupted by {self.summary['interrupted']}")
        if "stopped" in self.summary:
            raise Error(f"run stopped: {self.summary['stopped']} (the summary and records cover the windows measured "
                        "before)")

    def records(self):
        """Runs it to the end: every window's record, in order (the summary is in .summary)."""
        return list(self)


class Model:
    """One model loaded on one device. Make it with Model.load()."""

    def __init__(self, core):
        self._core = core

    @classmethod
    def load(cls, dir=None, *, device="cpu", precision="fp32", moe_kernels="auto", expert_precision="bf16", gpu=0,
             tokenizer=None):
        """Loads a checkpoint directory (config.json, model.safetensors, optionally tokenizer.json; the shipped
        model when dir is None, see default_model_dir). device "cpu" or "cuda" (a CUDA build), precision "fp32" or
        "bf16" (cuda), moe_kernels "auto", "fused" or "host" (cuda), expert_precision "bf16", "fp8" or "int8" (the
        routed experts quantised weight-only), as the CLI's --device/--precision/--moe-kernels/--expert-precision;
        tokenizer "bytes" or a tokenizer.json path (default: the model's own, else bytes)."""
        d = default_model_dir() if dir is None else os.fspath(dir)
        device_opts = {"device": device, "precision": precision, "moe_kernels": moe_kernels,
                       "expert_precision": expert_precision, "gpu": gpu}
        return cls(_core.Model(d, tokenizer or "", device_opts))

    dir = property(lambda self: self._core.dir, doc="the checkpoint directory")
    config = property(lambda self: self._core.config, doc="the model's config.json as the engine reads it (a dict)")
    tokenizer = property(lambda self: self._core.tokenizer, doc="the tokenizer, described in one line")
    device = property(lambda self: self._core.device, doc="device, precision, moe_kernels, expert_precision, gpu")

    def __repr__(self):
        return f"wattmoe.Model({self.dir!r}, device={self.device['device']!r})"

    def encode(self, text):
        """Token ids of the text (an int32 array; no BOS/EOS added)."""
        return self._core.encode(text)

    def decode(self, ids):
        """The text of token ids (bytes decoded as UTF-8, invalid sequences replaced: a byte model may end inside a
        character)."""
        return self._core.decode(np.ascontiguousarray(ids, dtype=np.int32).reshape(-1)).decode("utf-8", "replace")

    def eval(self, text, *, policy=None, seq=128, batch=16, max_tokens=0, stride=0):
        """Bits per byte, perplexity and expert use on a text (str) or a text file (pathlib.Path): a dict equal to
        `wattmoe eval`'s JSON for the same options (its "data" is "<text>" for a str)."""
        t, p = _text_or_path(text)
        windows = {"seq": seq, "batch": batch, "max_tokens": max_tokens, "stride": stride}
        return self._core.eval(t, p, windows, _routing(policy))

    def run(self, stream, *, power_budget_w=None, energy_budget_j_per_token=None, ttt=None, policy=None, **options):
        """A budgeted run over a text (str) or text file (pathlib.Path): returns a RunStream, whose iteration yields
        each window's record as it finishes (see RunStream). power_budget_w (W) or energy_budget_j_per_token
        (J/token; the old names power_budget and energy_budget still work) make the controller hold the plant there;
        options are `wattmoe run`'s other flags (seq, max_tokens, log, compare_windows, budget_schedule,
        control_policy, thermal_guard, ladder, allow_infeasible, plant, sim_params, sim_streams, step_period_s,
        idle_s, ambient_c). Options are checked when the iteration starts."""
        t, p = _text_or_path(stream)
        opts = _options(power_budget_w=power_budget_w, energy_budget_j_per_token=energy_budget_j_per_token, **options)
        if "log" in opts:
            opts["log"] = os.fspath(opts["log"])
        ttt_opts = None if ttt is None or ttt is False else {} if ttt is True else ttt
        routing = _routing(policy)
        return RunStream(lambda on_record: self._core.run(t, p, opts, routing, ttt_opts, on_record))

    def generate(self, prompt, *, max_new=200, temperature=0.8, top_p=0.95, seed=0, power_budget_w=None,
                 energy_budget_j_per_token=None, policy=None, **options):
        """Samples a continuation of prompt (temperature 0: greedy; top_p: nucleus sampling) as `wattmoe generate`
        does, on the serving engine, which bills the energy of every step (simulated on the CPU, NVML on a GPU) and,
        with power_budget_w (W) or energy_budget_j_per_token (J/token; the old names power_budget and energy_budget
        still work), holds that budget by routing. Returns a dict: text,
        finish_reason ("length" or "stop"), prompt_tokens, completion_tokens, context, energy_j, experts_per_token,
        latency_s, engine (the engine's summary). options: context, control_policy, thermal_guard, ladder, plant,
        sim_params, ambient_c, sim_period_s, control_period_s (`wattmoe serve`'s flags). Warns when the context cut
        the generation short."""
        opts = _options(power_budget_w=power_budget_w, energy_budget_j_per_token=energy_budget_j_per_token, **options)
        out = self._core.generate(prompt, max_new, temperature, top_p, seed, opts, _routing(policy))
        if out["finish_reason"] == "length" and out["completion_tokens"] < max_new:
            warnings.warn(f"generate: {out['completion_tokens']} new tokens, fewer than max_new {max_new}: the context "
                          f"holds {out['context']} tokens and the prompt took {out['prompt_tokens']}", stacklevel=2)
        return out

    def forward(self, ids, *, policy=None):
        """One forward pass of token ids ([seq] or [batch, seq]) with this routing. Returns a dict of NumPy arrays:
        logits [.., seq, vocab], and per layer router_probs [.., seq, experts] and experts [.., seq, k] (the chosen
        experts, -1 for an unused slot; None for a dense layer). The arrays own their memory (one copy out of the
        engine, whose buffers the next forward reuses); a [seq] input gives [seq, ...] views of them."""
        x = np.ascontiguousarray(ids, dtype=np.int32)
        if x.ndim not in (1, 2):
            raise Error(f"forward: ids must be [seq] or [batch, seq], got shape {x.shape}")
        out = self._core.forward(x.reshape(1, -1) if x.ndim == 1 else x, _routing(policy))
        if x.ndim == 1:
            out = {"logits": out["logits"][0],
                   "router_probs": [None if a is None else a[0] for a in out["router_probs"]],
                   "experts": [None if a is None else a[0] for a in out["experts"]]}
        return out
