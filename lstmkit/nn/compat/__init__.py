"""Models built with other packages, loaded as lstmkit modules (and back).

    from lstmkit.nn.compat import from_xlstm, to_xlstm
    ours = from_xlstm(their_module)                    # mLSTMLayer, sLSTMLayer, xLSTMBlockStack,
    ours = from_xlstm(their_state_dict, their_config)  # xLSTMLMModel or xLSTMLarge of `xlstm`
    theirs = to_xlstm(ours)                            # back into the authors' package

See `lstmkit.nn.compat.xlstm` for the quirks it handles (configurations: `xlstm_configs`, weights: `xlstm_weights`).
"""

from lstmkit.nn.compat.xlstm import from_xlstm, mlstm_state_from_xlstm, to_xlstm

__all__ = ["from_xlstm", "mlstm_state_from_xlstm", "to_xlstm"]

from lstmkit.nn.compat.hf import from_hf, to_hf

__all__ += ["from_hf", "to_hf"]
