"""Weights, the xLSTM authors' state dicts and lstmkit's, mapped both ways (the quirks: `lstmkit.nn.compat.xlstm`).

Import: one function per module kind, their state dict (keys under a prefix p) -> ours:
`mlstm_layer_weights`, `slstm_layer_weights`, `stack_weights` (their small models), `large_weights` (xLSTMLarge).
Export: `lm_weights_to_theirs`, our xLSTMLM -> their xLSTMLMModel, the same renames the other way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.nn.xlstm.large import xLSTMLarge
from lstmkit.nn.xlstm.lm import xLSTMLM, xLSTMStack

MLSTM_RENAMES = {
    "conv.": "conv1d.conv.",
    "igate.": "mlstm_cell.igate.",
    "fgate.": "mlstm_cell.fgate.",
    "outnorm.weight": "mlstm_cell.outnorm.weight",
    "skip": "learnable_skip",
}
"""Our mLSTMLayer's key prefixes -> theirs."""
SLSTM_RENAMES = {"conv.": "conv1d.conv.", "igate.": "fgate.", "fgate.": "igate.", "outnorm.weight": "group_norm.weight"}
"""Our sLSTMLayer's key prefixes -> theirs (their fgate feeds the input gate: quirk 1)."""


def plus_one(w: Tensor) -> Tensor:
    return w + 1


def mlstm_layer_weights(sd: dict, p: str, ours: nn.Module) -> dict:
    out = {}
    for key in ours.state_dict():
        theirs = next((key.replace(a, b, 1) for a, b in MLSTM_RENAMES.items() if key.startswith(a)), key)
        value = sd[p + theirs]
        out[key] = value[:, 0, :] if key == "conv.weight" else plus_one(value) if key == "outnorm.weight" else value
    return out


def slstm_recurrent(sd: dict, p: str, backend: str, NH: int) -> tuple[Tensor, Tensor]:
    R, b = sd[p + "slstm_cell._recurrent_kernel_"], sd[p + "slstm_cell._bias_"]
    DH = R.shape[-1] if backend == "vanilla" else R.shape[1]
    if backend == "vanilla":  # R (NH, 4·DH_out, DH_in), b gate-major
        return R.reshape(NH, 4, DH, DH), b.reshape(-1)
    return R.reshape(NH, DH, 4, DH).permute(0, 2, 3, 1), b.reshape(NH, 4, DH).permute(1, 0, 2).reshape(-1)


def slstm_layer_weights(sd: dict, p: str, ours: nn.Module, backend: str) -> dict:
    swapped = {"igate.": "fgate.", "fgate.": "igate."}  # their fgate feeds the input gate (quirk 1)
    out = {}
    out["cell.R"], out["cell.b"] = slstm_recurrent(sd, p, backend, ours.num_heads)
    for key in ours.state_dict():
        if key.startswith("cell."):
            continue
        if key == "outnorm.weight":
            norm = sd.get(p + "group_norm.weight")  # absent when group_norm_weight=False: scale 1
            out[key] = torch.ones_like(ours.outnorm.weight) if norm is None else plus_one(norm)
        elif key.startswith("conv."):
            value = sd[p + "conv1d.conv." + key[len("conv.") :]]
            out[key] = value[:, 0, :] if key == "conv.weight" else value
        else:
            prefix = next((a for a in swapped if key.startswith(a)), None)
            out[key] = sd[p + (key if prefix is None else swapped[prefix] + key[len(prefix) :])]
    return out


def stack_weights(sd: dict, p: str, ours: xLSTMStack, backends: str) -> dict:
    out = {}
    for index, block in enumerate(ours.blocks):
        b_ours, b_theirs = f"blocks.{index}.", f"{p}blocks.{index}."
        out[b_ours + "norm.weight"] = plus_one(sd[b_theirs + "xlstm_norm.weight"])
        if ours.config.blocks[index] == "m":
            layer = mlstm_layer_weights(sd, b_theirs + "xlstm.", block.layer)
        else:
            layer = slstm_layer_weights(sd, b_theirs + "xlstm.", block.layer, backends)
            out[b_ours + "ffn_norm.weight"] = plus_one(sd[b_theirs + "ffn_norm.weight"])
            for key in block.ffn.state_dict():
                out[b_ours + "ffn." + key] = sd[b_theirs + "ffn." + key]
        out.update({b_ours + "layer." + k: v for k, v in layer.items()})
    if ours.config.final_norm:
        out["norm.weight"] = plus_one(sd[p + "post_blocks_norm.weight"])
    return out


def large_weights(sd: dict, c, ours: xLSTMLarge) -> dict:
    out = {"embedding.weight": sd["embedding.weight"], "head.weight": sd["lm_head.weight"]}
    if ours.config.add_out_norm:
        out.update({"norm." + k: sd["backbone.out_norm." + k] for k in ours.norm.state_dict()})
    qk, v = ours.config.qk_dim, ours.config.v_dim
    for index, block in enumerate(ours.blocks):
        b_ours, b_theirs = f"blocks.{index}.", f"backbone.blocks.{index}."
        m = b_theirs + "mlstm_layer."
        parts = {}
        for suffix in ("weight", "bias"):
            if c.weight_mode == "fused":
                if m + "qkv_opreact." + suffix in sd:
                    q_, k_, v_, o_ = sd[m + "qkv_opreact." + suffix].split([qk, qk, v, v])
                    parts.update({f"q.{suffix}": q_, f"k.{suffix}": k_, f"v.{suffix}": v_, f"ogate.{suffix}": o_})
                i_, f_ = sd[m + "ifgate_preact." + suffix].chunk(2)
                parts.update({f"igate.{suffix}": i_, f"fgate.{suffix}": f_})
                if b_theirs + "ffn.proj_up_gate_z." + suffix in sd:
                    out[b_ours + "ffn.proj_up." + suffix] = sd[b_theirs + "ffn.proj_up_gate_z." + suffix]
            else:
                names = {
                    "q": "q",
                    "k": "k",
                    "v": "v",
                    "ogate": "ogate_preact",
                    "igate": "igate_preact",
                    "fgate": "fgate_preact",
                }
                present = {o: f"{m}{t}.{suffix}" for o, t in names.items() if f"{m}{t}.{suffix}" in sd}
                parts.update({f"{o}.{suffix}": sd[key] for o, key in present.items()})
                up = [b_theirs + f"ffn.proj_up_gate.{suffix}", b_theirs + f"ffn.proj_up.{suffix}"]
                if up[0] in sd:
                    out[b_ours + "ffn.proj_up." + suffix] = torch.cat([sd[up[0]], sd[up[1]]])
        for key in block.layer.state_dict():
            if key.startswith("outnorm."):
                out[b_ours + "layer." + key] = sd[m + "multihead_norm." + key[len("outnorm.") :]]
            elif key.startswith("out_proj."):
                out[b_ours + "layer." + key] = sd[m + key]
            else:
                out[b_ours + "layer." + key] = parts[key]
        for ours_norm, theirs_norm in (("norm", "norm_mlstm"), ("ffn_norm", "norm_ffn")):
            for key in getattr(block, ours_norm).state_dict():
                out[f"{b_ours}{ours_norm}.{key}"] = sd[f"{b_theirs}{theirs_norm}.{key}"]
        for key in block.ffn.proj_down.state_dict():
            out[b_ours + "ffn.proj_down." + key] = sd[b_theirs + "ffn.proj_down." + key]
    return out


def lm_weights_to_theirs(ours: xLSTMLM) -> dict:
    """The inverse of the import: the same renames, minus 1 on norm scales, gates swapped back."""
    sd = ours.state_dict()
    out = {"token_embedding.weight": sd["embedding.weight"], "lm_head.weight": sd["head.weight"]}
    p = "xlstm_block_stack."
    if ours.config.final_norm:
        out[p + "post_blocks_norm.weight"] = sd["stack.norm.weight"] - 1
    renames = {"m": MLSTM_RENAMES, "s": SLSTM_RENAMES}
    for index, letter in enumerate(ours.config.blocks):
        ours_block, theirs_block = f"stack.blocks.{index}.", f"{p}blocks.{index}."
        for key, value in sd.items():
            if not key.startswith(ours_block):
                continue
            key = key[len(ours_block) :]
            if key in ("norm.weight", "ffn_norm.weight"):
                out[theirs_block + ("xlstm_norm.weight" if key == "norm.weight" else key)] = value - 1
            elif key.startswith("ffn."):
                out[theirs_block + key] = value
            elif key == "layer.cell.R":
                NH, _, _, DH = value.shape  # vanilla layout (NH, 4·DH_out, DH_in)
                out[theirs_block + "xlstm.slstm_cell._recurrent_kernel_"] = value.reshape(NH, 4 * DH, DH)
            elif key == "layer.cell.b":
                out[theirs_block + "xlstm.slstm_cell._bias_"] = value
            else:
                key = key[len("layer.") :]
                name = next((key.replace(a, b, 1) for a, b in renames[letter].items() if key.startswith(a)), key)
                value = value[:, None, :] if key == "conv.weight" else value - 1 if key == "outnorm.weight" else value
                out[theirs_block + "xlstm." + name] = value
    return out
