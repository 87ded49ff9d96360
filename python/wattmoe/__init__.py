"""wattmoe: a Mixture-of-Experts engine that holds a power or energy budget, from Python.

    import wattmoe
    model = wattmoe.Model.load()                      # the shipped models/kjv-small (or a directory)
    print(model.eval("In the beginning God created the heaven and the earth.")["bits_per_byte"])
    for record in model.run(open("text.txt").read(), power_budget_w=320):
        print(record["window"], record["sim_power_w"])

The engine is the same library the `wattmoe` command runs (docs/ARCHITECTURE.md, "The Python package"): eval's
dict equals `wattmoe eval`'s JSON, run's records equal `wattmoe run --log`'s lines, and bad input raises
wattmoe.Error with the message the command line prints.
"""
from ._core import Error, __version__
from .meter import EnergyMeter
from .model import Model, RunStream, default_model_dir
from .tokenizer import Tokenizer

__all__ = ["Error", "EnergyMeter", "Model", "RunStream", "Tokenizer", "default_model_dir", "__version__"]
