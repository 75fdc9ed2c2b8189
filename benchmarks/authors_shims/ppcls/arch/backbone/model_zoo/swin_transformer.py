"""Stand-in for the Swin helpers the official MixFormer imports (PaddleClas kept them under
legendary_models at the MixFormer commit, so the file's own import of this module fails there)."""
import paddle.nn as nn


class Mlp(nn.Layer):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features or in_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x, window_size):
    """[B, H, W, C] -> [B * windows, ws, ws, C]."""
    b, h, w, c = x.shape
    x = x.reshape([b, h // window_size, window_size, w // window_size, window_size, c])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, window_size, window_size, c])


def window_reverse(windows, window_size, H, W, C):
    """[B * windows, ws, ws, C] -> [B, H, W, C]."""
    x = windows.reshape([-1, H // window_size, W // window_size, window_size, window_size, C])
    return x.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, H, W, C])
