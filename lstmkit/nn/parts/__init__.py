"""Building blocks that the recurrent families' layers share: causal convolution, head-wise linear maps, norms.

causal_conv.py       depthwise convolution over time, streaming with its state
headwise_linear.py   one small matrix per head (block-diagonal)
init.py              the small and Wang initialisations (standard deviations)
norms.py             LayerNorm, RMSNorm, and the per-head norm of the xLSTM layers
"""
