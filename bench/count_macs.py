#!/usr/bin/env python3
"""Multiply-accumulates (MACs) per model, counted from the ONNX graphs, for docs/performance.md.

    models/.venv/bin/python bench/count_macs.py [--width 640 --height 480] [--min-face 20 80]

Counts Conv (out_elements x in_channels/group x kh x kw) and Gemm/MatMul (M x N x K) after ONNX
shape inference with the input pinned; element-wise ops (PReLU, Add, Softmax, pooling) are left
out: they are memory-bound and small next to the convolutions. P-Net is summed over the pyramid a
W x H frame needs (the scales of src/vision/detect.rs); R-Net and O-Net per crop.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import shape_inference

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")


def macs(path, shape):
    model = onnx.load(path)
    inp = model.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, shape):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            out = shapes[node.output[0]]
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            out = shapes[node.output[0]]
            k = a[-1]
            total += int(np.prod(out)) * k
    return total


def scales(w, h, min_face):
    m = np.float32(12.0) / np.float32(max(min_face, 12.0))
    side = np.float32(min(w, h)) * m
    s, out = m, []
    while side >= 12:
        out.append(s)
        s = np.float32(s * np.float32(0.709))
        side = np.float32(side * np.float32(0.709))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--min-face", type=float, nargs="+", default=[20, 40, 60, 80])
    a = ap.parse_args()
    m = lambda f: os.path.join(MODELS, f)
    for mf in a.min_face:
        total, sizes = 0, []
        for s in scales(a.width, a.height, mf):
            sw = int(np.float32(a.width) * s + np.float32(1))
            sh = int(np.float32(a.height) * s + np.float32(1))
            sizes.append(f"{sw}x{sh}")
            total += macs(m("pnet.onnx"), [1, 3, sh, sw])
        print(f"P-Net pyramid {a.width}x{a.height}, min_face {mf:g}: {len(sizes)} levels "
              f"({' '.join(sizes)}): {total / 1e6:.1f} MMAC")
    print(f"R-Net per crop: {macs(m('rnet.onnx'), [1, 3, 24, 24]) / 1e6:.2f} MMAC")
    print(f"O-Net per crop: {macs(m('onet.onnx'), [1, 3, 48, 48]) / 1e6:.2f} MMAC")
    print(f"MobileFaceNet: {macs(m('mobilefacenet.onnx'), [1, 3, 112, 112]) / 1e6:.1f} MMAC")
    print(f"dlib ResNet: {macs(m('dlib_resnet.onnx'), [1, 3, 150, 150]) / 1e6:.1f} MMAC")


if __name__ == "__main__":
    main()
