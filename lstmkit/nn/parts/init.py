"""The two initialisations of the xLSTM authors' layers (both as standard deviations of a zero-mean normal).

small init   std = √(2 / (5 · d))            d = the width a map reads (Nguyen & Salazar 2019)
Wang init    std = 2 / L / √d                L = the number of blocks, for the maps out of a block
                                             (Wang et al. 2021, as the xLSTM authors use it)
"""

from __future__ import annotations

import math


def small_init_std(width: int) -> float:
    """√(2 / (5 · width))."""
    return math.sqrt(2 / (5 * width))


def wang_init_std(width: int, num_blocks: int) -> float:
    """2 / num_blocks / √width."""
    return 2 / num_blocks / math.sqrt(width)
