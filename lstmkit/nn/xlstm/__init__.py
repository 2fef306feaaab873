"""The xLSTM: the sLSTM and mLSTM recurrences (`lstmkit.nn.slstm`, `lstmkit.nn.mlstm`) made into layers, residual
blocks and language models.

    mlstm_layer.py slstm_layer.py   the two layers of the xLSTM paper (figs. 10-11), streaming with their state
    blocks.py                       the residual blocks: pre-norm, a layer, the skip connection; the feed-forward
    config.py                       xLSTMConfig, one flat dataclass for the stack and the language model
    lm.py                           xLSTMStack and xLSTMLM: embedding, blocks from a string such as "msm", head
    large.py                        xLSTMLarge: the layout of the authors' 7B model, at any size
"""
