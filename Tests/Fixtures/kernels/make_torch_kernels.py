"""Writes torch_kernels.json: small inputs and PyTorch's outputs for SAMTensor's kernels, so the
Swift tests check our semantics against torch itself (not only against our own reference loops).

Needs a Python with torch (the project keeps one at .venv-ref, outside git):
    .venv-ref/bin/python Tests/Fixtures/kernels/make_torch_kernels.py
Tensors are stored flat in row-major order; images are stored channels-last ([H, W, C]) like
SAMTensor, so the script permutes torch's NCHW results. The seed is fixed: reruns give the same file.
"""

import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261129)
torch.set_num_threads(1)
cases = {}


def flat(t):
    return [float(v) for v in t.detach().contiguous().reshape(-1).tolist()]


def hwc(t):  # [1, C, H, W] -> [H, W, C]
    return t[0].permute(1, 2, 0)


def rand(*shape, low=-1.0, high=1.0):
    return torch.rand(*shape, dtype=torch.float32) * (high - low) + low


resize = []
for planes, h, w, oh, ow in [(2, 7, 5, 13, 11), (1, 5, 9, 3, 4), (1, 6, 6, 1, 1), (1, 8, 8, 32, 32),
                             (1, 20, 30, 47, 67), (1, 3, 7, 3, 21)]:
    x = rand(1, planes, h, w, low=-20, high=20)
    y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    resize.append({"input": flat(x), "shape": [planes, h, w], "height": oh, "width": ow, "output": flat(y)})
cases["resize"] = resize

conv = []
for h, w, cin, cout, k, stride, padding in [(7, 9, 5, 6, 3, 2, 1), (8, 6, 3, 4, 3, 1, 1), (5, 5, 4, 3, 1, 1, 0)]:
    x = rand(1, cin, h, w)
    weight = rand(cout, cin, k, k)
    bias = rand(cout)
    y = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    conv.append({"input": flat(hwc(x)), "shape": [h, w, cin], "weight": flat(weight), "weightShape": list(weight.shape),
                 "bias": flat(bias), "stride": stride, "padding": padding, "output": flat(hwc(y)),
                 "outputShape": list(hwc(y).shape)})
cases["conv2d"] = conv

depthwise = []
for h, w, c, stride in [(6, 7, 5, 2), (9, 8, 11, 1)]:
    x = rand(1, c, h, w)
    weight = rand(c, 1, 3, 3)
    bias = rand(c)
    y = F.conv2d(x, weight, bias, stride=stride, padding=1, groups=c)
    depthwise.append({"input": flat(hwc(x)), "shape": [h, w, c], "weight": flat(weight), "weightShape": list(weight.shape),
                      "bias": flat(bias), "stride": stride, "padding": 1, "output": flat(hwc(y)),
                      "outputShape": list(hwc(y).shape)})
cases["depthwise"] = depthwise

transpose = []
for h, w, cin, cout in [(3, 4, 5, 6), (2, 3, 8, 4)]:
    x = rand(1, cin, h, w)
    weight = rand(cin, cout, 2, 2)
    bias = rand(cout)
    y = F.conv_transpose2d(x, weight, bias, stride=2)
    transpose.append({"input": flat(hwc(x)), "shape": [h, w, cin], "weight": flat(weight), "weightShape": list(weight.shape),
                      "bias": flat(bias), "stride": 2, "padding": 0, "output": flat(hwc(y)),
                      "outputShape": list(hwc(y).shape)})
cases["convTranspose"] = transpose

x = rand(4, 13, low=2, high=5)
weight, bias = rand(13), rand(13)
cases["layerNorm"] = {"input": flat(x), "shape": [4, 13], "weight": flat(weight), "bias": flat(bias), "eps": 1e-6,
                      "output": flat(F.layer_norm(x, (13,), weight, bias, eps=1e-6))}

x = torch.linspace(-10, 10, 2001, dtype=torch.float32)
cases["gelu"] = {"input": flat(x), "output": flat(torch.nn.GELU()(x))}

x = rand(5, 9, low=-8, high=8)
cases["softmax"] = {"input": flat(x), "shape": [5, 9], "output": flat(torch.softmax(x, dim=-1))}

# TinyViT's Attention: (q @ k^T) * scale + bias[head], softmax, @ v; groups ordered (window, head).
windows, heads, n, d = 3, 2, 5, 4
q, k, v = rand(windows, heads, n, d), rand(windows, heads, n, d), rand(windows, heads, n, d)
bias = rand(heads, n, n, low=-2, high=2)
scale = d ** -0.5
attn = ((q @ k.transpose(-2, -1)) * scale + bias).softmax(dim=-1)
y = attn @ v
cases["attention"] = {"q": flat(q), "k": flat(k), "v": flat(v), "shape": [windows * heads, n, d], "bias": flat(bias),
                      "biasShape": [heads, n, n], "scale": scale, "output": flat(y)}

cases["torchVersion"] = torch.__version__
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_kernels.json")
with open(path, "w") as f:
    json.dump(cases, f, separators=(",", ":"))
print("wrote", path, os.path.getsize(path), "bytes")
