"""The MAC counter sees every GEMM form the families use (layers, functional calls, matmuls)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppvision_hybrid.flops import count_macs, count_params


class _EveryForm(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1, groups=1)          # 8*8*8 outputs x 27
        self.dw_weight = self.create_parameter([8, 1, 3, 3])        # functional depthwise conv
        self.fc = nn.Linear(8, 16)
        self.w = self.create_parameter([16, 4])
        self.b = self.create_parameter([4], is_bias=True)
        self.bn = nn.BatchNorm2D(8)                                  # not counted

    def forward(self, x):
        x = self.bn(self.conv(x))                                    # [1, 8, 8, 8]
        x = F.conv2d(x, self.dw_weight, padding=1, groups=8)         # 512 * 9
        t = x.flatten(2).transpose([0, 2, 1])                        # [1, 64, 8]
        t = self.fc(t)                                               # 64 * 8 * 16
        attn = paddle.matmul(t, t, transpose_y=True)                 # 64*64 outputs x 16
        t = attn @ t                                                 # 64*16 outputs x 64
        return paddle.addmm(self.b, t.reshape([64, 16]), self.w)     # 64*4 outputs x 16


def test_every_gemm_form_is_counted_exactly():
    model = _EveryForm()
    expected = 512 * 27 + 512 * 9 + 64 * 8 * 16 + 64 * 64 * 16 + 64 * 16 * 64 + 64 * 4 * 16
    assert count_macs(model, (3, 8, 8)) == expected


def test_params_exclude_batchnorm_statistics():
    model = _EveryForm()
    expected = 8 * 27 + 8 + 8 * 9 + 8 * 16 + 16 + 16 * 4 + 4 + 2 * 8
    assert count_params(model) == expected


def test_counter_restores_the_patched_functions():
    before = (F.conv2d, F.linear, paddle.matmul, paddle.bmm, paddle.addmm, paddle.Tensor.__matmul__)
    count_macs(_EveryForm(), (3, 8, 8))
    after = (F.conv2d, F.linear, paddle.matmul, paddle.bmm, paddle.addmm, paddle.Tensor.__matmul__)
    assert before == after
