"""xpusim: accelerator cost/throughput simulator for LLM training and inference.

The Python API mirrors the command line::

    from simulator import load_scenario, load_hardware, load_model
    scenario = load_scenario("scenarios/llama3.1-8b-h100-serving.yaml",
                             overrides=["workload.arrivals.rate_per_s=4"])
"""

from simulator.errors import DoesNotFit, InputError, InputErrors, XpusimError
from simulator.loading import load_scenario, scenario_from_dict
from simulator.profiles.catalog import hardware_ids, load_hardware, load_model, model_ids
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.scenario import Scenario

__version__ = "0.1.0"

__all__ = [
    "DoesNotFit",
    "HardwareProfile",
    "InputError",
    "InputErrors",
    "ModelProfile",
    "Scenario",
    "XpusimError",
    "__version__",
    "hardware_ids",
    "load_hardware",
    "load_model",
    "load_scenario",
    "model_ids",
    "scenario_from_dict",
]
