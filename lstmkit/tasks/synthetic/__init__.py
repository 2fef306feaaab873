"""Synthetic tasks, generated from a seeded torch.Generator so they always work offline (one file per family)."""

from lstmkit.tasks.synthetic.adding import AddingProblem
from lstmkit.tasks.synthetic.copy import CopyRecall
from lstmkit.tasks.synthetic.formal import CycleNavigation, EvenPairs, ModularArithmetic, Parity
from lstmkit.tasks.synthetic.mqar import MQAR
from lstmkit.tasks.synthetic.temporal_order import TemporalOrder

SYNTHETIC = {
    "adding": AddingProblem,
    "temporal-order": TemporalOrder,
    "copy": CopyRecall,
    "parity": Parity,
    "cycle-navigation": CycleNavigation,
    "even-pairs": EvenPairs,
    "modular-arithmetic": ModularArithmetic,
    "mqar": MQAR,
}
"""Registry name -> task class; construct with keyword arguments (each has defaults)."""

__all__ = [
    "MQAR",
    "SYNTHETIC",
    "AddingProblem",
    "CopyRecall",
    "CycleNavigation",
    "EvenPairs",
    "ModularArithmetic",
    "Parity",
    "TemporalOrder",
]
