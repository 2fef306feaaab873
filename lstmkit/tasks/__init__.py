"""Tasks: seeded synthetic problems and real datasets behind one interface (see `lstmkit.tasks.base`)."""

from lstmkit.tasks.base import Batch, TaskSpec, compute_loss, compute_metrics
from lstmkit.tasks.real import REAL
from lstmkit.tasks.synthetic import SYNTHETIC

TASKS = {**SYNTHETIC, **REAL}
"""Every task by name: the synthetic ones generated on the fly, the real ones read from a cache folder."""

__all__ = ["REAL", "SYNTHETIC", "TASKS", "Batch", "TaskSpec", "compute_loss", "compute_metrics"]
