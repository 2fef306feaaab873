"""Synthetic tasks, generated from a seeded torch.Generator so they always work offline (one file per family)."""

from lstmkit.tasks.synthetic.adding import AddingProblem
from lstmkit.tasks.synthetic.context_free import (
    ModularArithmeticBrackets,
    ReverseString,
    SolveEquation,
    StackManipulation,
)
from lstmkit.tasks.synthetic.context_sensitive import (
    BinaryAddition,
    BinaryMultiplication,
    BucketSort,
    ComputeSqrt,
    DuplicateString,
    MissingDuplicate,
    OddsFirst,
)
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
    "modular-arithmetic-brackets": ModularArithmeticBrackets,
    "reverse-string": ReverseString,
    "stack-manipulation": StackManipulation,
    "solve-equation": SolveEquation,
    "bucket-sort": BucketSort,
    "duplicate-string": DuplicateString,
    "missing-duplicate": MissingDuplicate,
    "odds-first": OddsFirst,
    "binary-addition": BinaryAddition,
    "binary-multiplication": BinaryMultiplication,
    "compute-sqrt": ComputeSqrt,
    "mqar": MQAR,
}
"""Registry name -> task class; construct with keyword arguments (each has defaults)."""

__all__ = [
    "MQAR",
    "SYNTHETIC",
    "AddingProblem",
    "BinaryAddition",
    "BinaryMultiplication",
    "BucketSort",
    "ComputeSqrt",
    "CopyRecall",
    "CycleNavigation",
    "DuplicateString",
    "EvenPairs",
    "MissingDuplicate",
    "ModularArithmetic",
    "ModularArithmeticBrackets",
    "OddsFirst",
    "Parity",
    "ReverseString",
    "SolveEquation",
    "StackManipulation",
    "TemporalOrder",
]
