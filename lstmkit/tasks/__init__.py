"""Tasks: seeded synthetic problems and real datasets behind one interface (see `lstmkit.tasks.base`)."""

from lstmkit.tasks.base import Batch, TaskSpec, compute_loss, compute_metrics
from lstmkit.tasks.real import REAL
from lstmkit.tasks.synthetic import SYNTHETIC

__all__ = ["REAL", "SYNTHETIC", "Batch", "TaskSpec", "compute_loss", "compute_metrics"]
