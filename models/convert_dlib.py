#!/usr/bin/env python3
"""Convert dlib's face-recognition ResNet (128-d descriptor) to ONNX for facegate.

Run from the repo root:  models/.venv/bin/python models/convert_dlib.py [--out DIR]
(--out: where the .onnx file, the manifest and parity/ are written; default models/. The download
cache stays in models/.cache. A calibrated `threshold = ...` line already in the manifest at the
target, with a `# threshold:` comment directly above it, is kept; 0.0 is written only if there is none.)

Source: PyPI `face-recognition-models==0.3.0` (sdist), file
`face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat`.

What it does (see models/README conventions in /work/notes/model-conventions.md):
  1. fetches the sdist with pip into models/.cache/face-recognition-models/ (no build, no install),
     extracts the .dat with tarfile and checks its sha256;
  2. parses dlib's DNN serialisation directly (dlib/serialize.h compact integers, float_details
     floats, length-prefixed strings, dlib/cuda/tensor.h tensors = raw little-endian float32);
     the layer order, layer kinds, filter counts, kernel sizes, strides and paddings are all read
     from the file and checked against dlib's `anet_type` (dnn_face_recognition_ex.cpp). Only the
     tag numbers are not stored in a dlib file: they are taken from anet_type;
  3. builds an opset-13 ONNX graph: input "input" [N,3,150,150] (NCHW, RGB, already
     (pixel - mean)/256), output "embedding" [N,128] (the raw dlib descriptor). Each dlib affine
     layer (batch-norm folded to per-channel gamma/beta) follows a convolution and is folded into
     it. dlib's add_prev takes the per-dimension maximum shape and zero-pads the smaller operand at
     the END of each dimension (channels and, once, rows/cols): this is an explicit ONNX Pad;
  4. compares onnxruntime against dlib itself (dlib-bin: face_recognition_model_v1 ->
     compute_face_descriptor(150x150 chip, num_jitters=0), which runs the net directly on the chip)
     on real LFW images, plus a same/different-person sanity check;
  5. writes models/dlib_resnet.onnx, models/parity/dlib.json (+ .f32 files), models/dlib-resnet.toml.
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
from pathlib import Path

import numpy as np
import onnx
from manifest_common import keep_threshold
from onnx import TensorProto, helper, numpy_helper

MODELS = Path(__file__).resolve().parent            # /work/main/models
REPO = MODELS.parent                                 # /work/main
OUT = MODELS                                         # --out: .onnx, manifest, parity/
DATA = (REPO / ".." / "shared" / "data").resolve()   # read-only shared data
LFW = DATA / "dev" / "lfw_folds_1_2"

PKG_NAME = "face-recognition-models"
PKG_VERSION = "0.3.0"
CACHE = MODELS / ".cache" / "face-recognition-models"
SDIST = CACHE / "face_recognition_models-0.3.0.tar.gz"
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
MEMBER = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
DAT_SIZE = 22466066
DAT_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
# Only used to make dlib-aligned chips for the sanity check / one parity case (never shipped).
SP5_MEMBER = "face_recognition_models/models/shape_predictor_5_face_landmarks.dat"

ONNX_FILE = "dlib_resnet.onnx"
MANIFEST = "dlib-resnet.toml"
NET = "dlib"
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
OPSET = 13
TEMPLATE = [[47.55, 46.60], [100.48, 46.60], [74.01, 76.56], [50.41, 103.02], [97.61, 103.02]]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# 1. fetch + extract
# --------------------------------------------------------------------------------------------
def fetch():
    CACHE.mkdir(parents=True, exist_ok=True)
    if not SDIST.exists():
        # pip only fetches the archive (pip prepares the sdist's metadata, it builds nothing).
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
                        f"{PKG_NAME}=={PKG_VERSION}", "-d", str(CACHE)], check=True)
    got = sha256_file(SDIST)
    if got != SDIST_SHA256:
        raise SystemExit(f"sdist sha256 mismatch: {got}")

    def extract(member, dest):
        if dest.exists():
            return
        with tarfile.open(SDIST, "r:gz") as tf:
            names = [n for n in tf.getnames() if n.endswith("/" + member) or n == member]
            if len(names) != 1:
                raise SystemExit(f"{member} not found exactly once in {SDIST}")
            data = tf.extractfile(names[0]).read()
        tmp = dest.with_suffix(dest.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    dat = CACHE / Path(MEMBER).name
    sp5 = CACHE / Path(SP5_MEMBER).name
    extract(MEMBER, dat)
    extract(SP5_MEMBER, sp5)
    if dat.stat().st_size != DAT_SIZE or sha256_file(dat) != DAT_SHA256:
        raise SystemExit(f"{dat}: size/sha256 mismatch")
    return dat, sp5


# --------------------------------------------------------------------------------------------
# 2. dlib DNN deserialisation
# --------------------------------------------------------------------------------------------
class Reader:
    def __init__(self, buf):
        self.b = buf
        self.p = 0

    def byte(self):
        v = self.b[self.p]
        self.p += 1
        return v

    def int(self):
        """dlib compact integer: control byte (0x80 = negative, low nibble = byte count), LE bytes."""
        c = self.byte()
        if c & 0x70:
            raise ValueError(f"bad int control byte 0x{c:02x} at {self.p - 1}")
        n = c & 0x0F
        if not 1 <= n <= 8:
            raise ValueError(f"bad int size {n} at {self.p - 1}")
        v = int.from_bytes(self.b[self.p:self.p + n], "little")
        self.p += n
        return -v if c & 0x80 else v

    def bool(self):
        c = self.byte()
        if c not in (ord("0"), ord("1")):
            raise ValueError(f"bad bool at {self.p - 1}")
        return c == ord("1")

    def string(self):
        n = self.int()
        s = self.b[self.p:self.p + n].decode("ascii")
        self.p += n
        return s

    def float(self):
        """float_details: mantissa (int64) then exponent (int16); value = ldexp((float)m, e)."""
        m = self.int()
        e = self.int()
        if abs(m) >= (1 << 24):
            raise ValueError("float mantissa too large (special value?)")
        return np.float32(np.ldexp(np.float64(m), e))

    def tensor(self):
        if self.int() != 2:
            raise ValueError("resizable_tensor version != 2")
        shape = tuple(self.int() for _ in range(4))
        n = int(np.prod(shape))
        a = np.frombuffer(self.b, dtype="<f4", count=n, offset=self.p).astype(np.float32)
        self.p += 4 * n
        return a.reshape(shape)

    def alias(self):
        if self.int() != 1:
            raise ValueError("alias_tensor version != 1")
        return tuple(self.int() for _ in range(4))

    def peek_string_prefix(self, prefix):
        save = self.p
        try:
            return self.string().startswith(prefix)
        except Exception:
            return False
        finally:
            self.p = save


def read_details(r):
    tag = r.string()
    d = {"version": tag}
    if tag in ("con_4", "con_5"):
        params = r.tensor().reshape(-1)
        d["kind"] = "con"
        d["num_filters"] = r.int()
        d["nr"], d["nc"], d["stride_y"], d["stride_x"] = r.int(), r.int(), r.int(), r.int()
        d["pad_y"], d["pad_x"] = r.int(), r.int()
        fshape, bshape = r.alias(), r.alias()
        for _ in range(4):
            r.float()                    # learning-rate / weight-decay multipliers
        d["use_bias"] = r.bool() if tag == "con_5" else True
        nf = int(np.prod(fshape))
        d["filters"] = params[:nf].reshape(fshape)
        nb = int(np.prod(bshape)) if d["use_bias"] else 0
        d["biases"] = params[nf:nf + nb].copy() if nb else np.zeros(fshape[0], np.float32)
        if params.size != nf + nb or fshape[0] != d["num_filters"] or fshape[2:] != (d["nr"], d["nc"]):
            raise ValueError("con_ parameter shapes inconsistent")
    elif tag in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)
        gshape, bshape = r.alias(), r.alias()
        d["kind"] = "affine"
        d["mode"] = r.int()
        d["disabled"] = r.bool() if tag == "affine_2" else False
        ng = int(np.prod(gshape))
        if d["mode"] != 0 or gshape != bshape or gshape[0] != 1 or gshape[2:] != (1, 1) \
                or params.size != 2 * ng or d["disabled"]:
            raise ValueError(f"unexpected affine layer {gshape} mode={d['mode']}")
        d["gamma"], d["beta"] = params[:ng].copy(), params[ng:].copy()
    elif tag == "relu_":
        d["kind"] = "relu"
    elif tag == "add_prev_":
        d["kind"] = "add_prev"
    elif tag in ("max_pool_2", "avg_pool_2"):
        d["kind"] = tag[:-2]
        d["nr"], d["nc"], d["stride_y"], d["stride_x"] = r.int(), r.int(), r.int(), r.int()
        d["pad_y"], d["pad_x"] = r.int(), r.int()
    elif tag in ("fc_2", "fc_3"):
        d["kind"] = "fc"
        d["num_outputs"], d["num_inputs"] = r.int(), r.int()
        params = r.tensor().reshape(-1)
        wshape, bshape = r.alias(), r.alias()
        d["bias_mode"] = r.int()        # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        for _ in range(4):
            r.float()
        d["use_bias"] = r.bool() if tag == "fc_3" else True
        nw = int(np.prod(wshape))
        d["weights"] = params[:nw].reshape(wshape[0], wshape[1] * wshape[2] * wshape[3])
        d["has_bias"] = d["bias_mode"] == 0 and d["use_bias"]
        nb = int(np.prod(bshape)) if d["bias_mode"] == 0 else 0
        if params.size != nw + nb:
            raise ValueError("fc_ parameter shapes inconsistent")
        d["biases"] = params[nw:nw + nb].copy() if d["has_bias"] else None
    else:
        raise ValueError(f"unsupported dlib layer '{tag}'")
    return d


def parse_dlib_net(buf):
    """Returns (loss, input, layers bottom-up). layers: dicts; tag/skip layers are {'kind':'tag|skip'}."""
    r = Reader(buf)
    if r.int() != 1:                                  # add_loss_layer version
        raise ValueError("not a dlib add_loss_layer stream")
    loss = {"version": r.string()}
    if loss["version"] != "loss_metric_2":
        raise ValueError(f"unexpected loss {loss['version']}")
    loss["margin"], loss["dist_thresh"] = float(r.float()), float(r.float())
    # add_layer/add_tag_layer/add_skip_layer write their version, then their subnetwork, so the
    # stream starts with the chain of versions from the top layer down to the input layer.
    chain = []
    while True:
        v = r.int()
        if r.peek_string_prefix("input_"):
            in_version = v
            break
        chain.append(v)
    inp = {"version": r.string()}
    if inp["version"] != "input_rgb_image_sized":
        raise ValueError(f"unexpected input layer {inp['version']}")
    inp["avg"] = [r.float(), r.float(), r.float()]    # red, green, blue
    inp["nr"], inp["nc"] = r.int(), r.int()

    def add_layer_tail(version, bottom):
        r.bool(); r.bool(); r.bool()                  # setup called / grad stale / disabled
        for _ in range(3):                            # x_grad, cached_output, params_grad|grad_final
            if r.tensor().size:
                raise ValueError("unexpected non-empty cached tensor")
        if bottom and version >= 3:
            r.int()                                   # _sample_expansion_factor

    layers = [read_details(r)]
    add_layer_tail(in_version, True)
    for v in reversed(chain):
        if v == 1:                                    # add_tag_layer / add_skip_layer: nothing more
            layers.append({"kind": "tag|skip"})
        elif v == 2:
            layers.append(read_details(r))
            add_layer_tail(v, False)
        else:
            raise ValueError(f"unexpected layer version {v}")
    if r.p != len(buf):
        raise ValueError(f"{len(buf) - r.p} trailing bytes")
    return loss, inp, layers


def anet_template():
    """dlib's anet_type (examples/dnn_face_recognition_ex.cpp), bottom-up."""
    def ares(n):        # relu<add_prev1<affine<con<n,3,3,1,1,relu<affine<con<n,3,3,1,1,tag1<>>>>>>>>
        return [("tag", 1), ("con", n, 3, 1), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",),
                ("add_prev", 1), ("relu",)]

    def ares_down(n):   # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block(stride 2)<tag1<>>>>>>>>
        return [("tag", 1), ("con", n, 3, 2), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",),
                ("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]

    t = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    t += ares(32) * 3                                  # alevel4
    t += ares_down(64) + ares(64) * 3                  # alevel3
    t += ares_down(128) + ares(128) * 2                # alevel2
    t += ares_down(256) + ares(256) * 2                # alevel1
    t += ares_down(256)                                # alevel0
    t += [("avg_pool", 0, 1), ("fc_no_bias", 128)]    # avg_pool_everything, fc_no_bias<128>
    return t


def check_against_template(layers):
    t = anet_template()
    if len(t) != len(layers):
        raise ValueError(f"{len(layers)} layers in file, anet_type has {len(t)}")
    for i, (e, d) in enumerate(zip(t, layers)):
        k = e[0]
        ok = True
        if k in ("tag", "skip"):
            ok = d["kind"] == "tag|skip"
            d["kind"], d["id"] = k, e[1]           # tag ids are not stored in dlib files
        elif k == "add_prev":
            ok = d["kind"] == "add_prev"
            d["id"] = e[1]
        elif k == "con":
            ok = (d["kind"] == "con" and d["num_filters"] == e[1] and d["nr"] == d["nc"] == e[2]
                  and d["stride_y"] == d["stride_x"] == e[3])
        elif k in ("max_pool", "avg_pool"):
            ok = (d["kind"] == k and d["nr"] == d["nc"] == e[1] and d["stride_y"] == d["stride_x"] == e[2])
        elif k == "fc_no_bias":
            ok = d["kind"] == "fc" and d["num_outputs"] == e[1] and not d["has_bias"]
        else:
            ok = d["kind"] == k
        if not ok:
            raise ValueError(f"layer {i}: file has {d['kind']}, anet_type expects {e}")


# --------------------------------------------------------------------------------------------
# 3. ONNX graph
# --------------------------------------------------------------------------------------------
def build_onnx(inp, layers):
    nodes, inits = [], []
    counter = {}

    def name(prefix):
        counter[prefix] = counter.get(prefix, 0) + 1
        return f"{prefix}{counter[prefix]}"

    def init(nm, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        return nm

    def pool_out(n, k, s, p):
        return 1 + (n + 2 * p - k) // s               # dlib (and ONNX floor-mode) output size

    cur, shape = INPUT_NAME, (3, inp["nr"], inp["nc"])   # (C, H, W)
    tags = {}
    summary = []
    i = 0
    while i < len(layers):
        d = layers[i]
        k = d["kind"]
        if k == "con":
            w = d["filters"].astype(np.float64)
            b = d["biases"].astype(np.float64)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is None or nxt["kind"] != "affine":
                raise ValueError("every conv of anet_type is followed by an affine layer")
            g, be = nxt["gamma"].astype(np.float64), nxt["beta"].astype(np.float64)
            w = (w * g[:, None, None, None]).astype(np.float32)
            b = (b * g + be).astype(np.float32)
            if w.shape[1] != shape[0]:
                raise ValueError("conv input channels mismatch")
            out = name("conv")
            nodes.append(helper.make_node(
                "Conv", [cur, init(out + ".weight", w), init(out + ".bias", b)], [out], name=out,
                kernel_shape=[d["nr"], d["nc"]], strides=[d["stride_y"], d["stride_x"]],
                pads=[d["pad_y"], d["pad_x"], d["pad_y"], d["pad_x"]]))
            shape = (d["num_filters"], pool_out(shape[1], d["nr"], d["stride_y"], d["pad_y"]),
                     pool_out(shape[2], d["nc"], d["stride_x"], d["pad_x"]))
            summary.append(f"conv {d['nr']}x{d['nc']}/{d['stride_y']} pad {d['pad_y']} -> {shape} (+affine)")
            cur = out
            i += 2
            continue
        if k == "affine":
            raise ValueError("affine layer not preceded by a conv")
        if k == "relu":
            out = name("relu")
            nodes.append(helper.make_node("Relu", [cur], [out], name=out))
            cur = out
        elif k in ("max_pool", "avg_pool"):
            if k == "avg_pool" and d["nr"] == 0 and d["nc"] == 0:       # avg_pool_everything
                out = name("gap")
                nodes.append(helper.make_node("GlobalAveragePool", [cur], [out], name=out))
                shape = (shape[0], 1, 1)
            else:
                if d["pad_y"] or d["pad_x"]:
                    raise ValueError("padded pooling not expected in anet_type")
                out = name("maxpool" if k == "max_pool" else "avgpool")
                nodes.append(helper.make_node(
                    "MaxPool" if k == "max_pool" else "AveragePool", [cur], [out], name=out,
                    kernel_shape=[d["nr"], d["nc"]], strides=[d["stride_y"], d["stride_x"]],
                    pads=[0, 0, 0, 0]))
                shape = (shape[0], pool_out(shape[1], d["nr"], d["stride_y"], 0),
                         pool_out(shape[2], d["nc"], d["stride_x"], 0))
            summary.append(f"{out} -> {shape}")
            cur = out
        elif k == "tag":
            tags[d["id"]] = (cur, shape)
        elif k == "skip":
            cur, shape = tags[d["id"]]
        elif k == "add_prev":
            other, oshape = tags[d["id"]]
            full = tuple(max(a, b) for a, b in zip(shape, oshape))
            ins = []
            for t, s in ((cur, shape), (other, oshape)):
                if s != full:                          # dlib: out-of-range elements count as 0
                    p = name("pad")
                    pads = np.array([0, 0, 0, 0, 0] + [f - x for f, x in zip(full, s)], np.int64)
                    nodes.append(helper.make_node("Pad", [t, init(p + ".pads", pads)], [p],
                                                  name=p, mode="constant"))
                    summary.append(f"{p}: {s} -> {full}")
                    t = p
                ins.append(t)
            out = name("add")
            nodes.append(helper.make_node("Add", ins, [out], name=out))
            cur, shape = out, full
        elif k == "fc":
            if shape[0] * shape[1] * shape[2] != d["num_inputs"] or d["weights"].shape[0] != d["num_inputs"]:
                raise ValueError("fc input size mismatch")
            fl = name("flatten")
            nodes.append(helper.make_node("Flatten", [cur], [fl], name=fl, axis=1))
            nodes.append(helper.make_node(
                "MatMul", [fl, init("fc.weight", d["weights"].astype(np.float32))], [OUTPUT_NAME],
                name="fc"))
            cur = OUTPUT_NAME
            shape = (d["num_outputs"],)
            summary.append(f"fc {d['num_inputs']} -> {d['num_outputs']} (no bias)")
        else:
            raise ValueError(k)
        i += 1
    if cur != OUTPUT_NAME:
        raise ValueError("graph does not end in the fc layer")

    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, inp["nr"], inp["nc"]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 128])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facegate models/convert_dlib.py", producer_version="1")
    model.ir_version = 8
    model.doc_string = (
        "dlib_face_recognition_resnet_model_v1 (dlib anet_type) from PyPI face-recognition-models "
        f"0.3.0, .dat sha256 {DAT_SHA256}. Input: NCHW RGB 150x150 chip, (pixel - "
        "[122.782, 117.001, 104.298]) / 256. Output: raw 128-d dlib descriptor.")
    return model, summary


# --------------------------------------------------------------------------------------------
# 4. checks
# --------------------------------------------------------------------------------------------
def load_rgb(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def preprocess(img, avg):
    """Exactly dlib's input_rgb_image_sized::to_tensor: (float(pixel) - avg_float) / 256."""
    x = img.astype(np.float32) - np.array(avg, np.float32)[None, None, :]
    x = x / np.float32(256.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def lfw_path(name, idx):
    return LFW / name / f"{name}_{int(idx):04d}.jpg"


def read_pairs(fold=0):
    lines = (LFW / "pairs.txt").read_text().split("\n")
    nfold, n = map(int, lines[0].split())
    block = [l.split() for l in lines[1 + fold * 2 * n: 1 + (fold + 1) * 2 * n]]
    same = [(lfw_path(a, i), lfw_path(a, j)) for a, i, j in block[:n]]
    diff = [(lfw_path(a, i), lfw_path(b, j)) for a, i, b, j in block[n:]]
    return same, diff


def rel_data(p):
    return str(Path(p).resolve().relative_to(DATA))


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=MODELS, help="output folder for the .onnx file, "
                    f"{MANIFEST} and parity/ (default: models/)")
    OUT = ap.parse_args().out.resolve()                # before the chdir below
    OUT.mkdir(parents=True, exist_ok=True)
    os.chdir(REPO)
    dat, sp5 = fetch()
    loss, inp, layers = parse_dlib_net(dat.read_bytes())
    check_against_template(layers)
    avg = [float(v) for v in inp["avg"]]
    if inp["nr"] != 150 or inp["nc"] != 150 or not np.allclose(avg, [122.782, 117.001, 104.298]):
        raise SystemExit(f"unexpected input layer {inp}")
    if [np.float32(v) for v in avg] != [np.float32(122.782), np.float32(117.001), np.float32(104.298)]:
        raise SystemExit("input means are not the float32 roundings of 122.782/117.001/104.298")
    ncon = sum(1 for l in layers if l["kind"] == "con")
    print(f"parsed {dat.name}: {len(layers)} layers ({ncon} conv, {sum(l['kind'] == 'add_prev' for l in layers)} "
          f"add_prev), loss {loss['version']} margin {loss['margin']:.3g} dist_thresh "
          f"{loss['dist_thresh']:.3g}, input {inp['version']} {inp['nr']}x{inp['nc']} avg {avg}")

    model, summary = build_onnx(inp, layers)
    onnx.checker.check_model(model, full_check=True)
    out_path = OUT / ONNX_FILE
    blob = model.SerializeToString()
    tmp = out_path.with_suffix(".onnx.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, out_path)
    onnx_sha = hashlib.sha256(blob).hexdigest()
    for s in summary:
        if "pad" in s or "fc" in s or "gap" in s or "maxpool" in s:
            print("   ", s)
    print(f"wrote {out_path} ({len(blob)} B, sha256 {onnx_sha})")

    # ---- numerical check against dlib --------------------------------------------------------
    import dlib
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(out_path), so, providers=["CPUExecutionProvider"])
    facerec = dlib.face_recognition_model_v1(str(dat))
    detector = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(sp5))

    def run_onnx(img):
        return sess.run([OUTPUT_NAME], {INPUT_NAME: preprocess(img, avg)})[0][0]

    def run_dlib(img):
        # overload "aligned 150x150 chip": net(chip) directly, no jitter, no resampling
        return np.array(facerec.compute_face_descriptor(img, 0), dtype=np.float64).astype(np.float32)

    def dlib_chip(img):
        """dlib's own alignment: HOG detector (1x upsampling), 5-point predictor, get_face_chip."""
        dets = detector(img, 1)
        if not dets:
            return None
        c = np.array([75.0, 75.0])
        best = min(dets, key=lambda r: np.hypot((r.left() + r.right()) / 2 - c[0], (r.top() + r.bottom()) / 2 - c[1]))
        return np.ascontiguousarray(dlib.get_face_chip(img, sp(img, best), size=150, padding=0.25))

    same, diff = read_pairs(0)
    n_check = 40
    max_diff = 0.0
    norms = []
    cache = {}

    def emb(path, aligned):
        key = (str(path), aligned)
        if key not in cache:
            img = load_rgb(path)
            if img.shape != (150, 150, 3):
                raise SystemExit(f"{path}: expected a 150x150 image")
            if aligned:
                img = dlib_chip(img)
            if img is None:
                cache[key] = None
            else:
                e_ref, e_onnx = run_dlib(img), run_onnx(img)
                nonlocal max_diff
                max_diff = max(max_diff, float(np.abs(e_ref - e_onnx).max()))
                norms.append(float(np.linalg.norm(e_ref)))
                cache[key] = (e_ref, e_onnx, img)
        return cache[key]

    sanity = {}
    for aligned in (False, True):
        res = {}
        for label, pairs in (("same", same[:n_check]), ("diff", diff[:n_check])):
            l2, cos = [], []
            for a, b in pairs:
                ea, eb = emb(a, aligned), emb(b, aligned)
                if ea is None or eb is None:
                    continue
                x, y = ea[1].astype(np.float64), eb[1].astype(np.float64)
                l2.append(np.linalg.norm(x - y))
                cos.append(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
            res[label] = (np.array(l2), np.array(cos))
        s_l2, s_cos = res["same"]
        d_l2, d_cos = res["diff"]
        acc = (np.sum(s_l2 < 0.6) + np.sum(d_l2 >= 0.6)) / (len(s_l2) + len(d_l2))
        key = "dlib_aligned" if aligned else "raw_lfw_150"
        sanity[key] = dict(n_same=len(s_l2), n_diff=len(d_l2),
                           l2_same_mean=float(s_l2.mean()), l2_diff_mean=float(d_l2.mean()),
                           cos_same_mean=float(s_cos.mean()), cos_diff_mean=float(d_cos.mean()),
                           acc_l2_0_6=float(acc))
        print(f"sanity [{key}] first {n_check}+{n_check} pairs of LFW fold 1 (ONNX embeddings): "
              f"L2 same {s_l2.mean():.3f}±{s_l2.std():.3f} (max {s_l2.max():.3f}), "
              f"diff {d_l2.mean():.3f}±{d_l2.std():.3f} (min {d_l2.min():.3f}); "
              f"cos same {s_cos.mean():.3f}, diff {d_cos.mean():.3f}; "
              f"acc @ L2<0.6: {acc * 100:.1f}% (n={len(s_l2)}+{len(d_l2)})")
    print(f"max |onnxruntime - dlib| over {len(norms)} images: {max_diff:.3g}; "
          f"descriptor L2 norm {np.mean(norms):.3f} (min {np.min(norms):.3f}, max {np.max(norms):.3f})")
    if max_diff > 1e-5:
        raise SystemExit("ONNX does not match dlib")

    # ---- parity fixtures --------------------------------------------------------------------
    pdir = OUT / "parity"
    pdir.mkdir(exist_ok=True)
    case_imgs = [
        (same[0][0], False, "the 150x150 LFW image used as-is as the chip"),
        (diff[0][1], True, "dlib-aligned chip: dlib HOG frontal detector (upsample 1, face nearest "
                           "the centre), shape_predictor_5_face_landmarks.dat from the same package, "
                           "dlib.get_face_chip(size=150, padding=0.25); uint8 RGB"),
    ]
    cases = []
    for k, (path, aligned, how) in enumerate(case_imgs):
        e_ref, e_onnx, img = emb(path, aligned)
        x = preprocess(img, avg)
        fin, fout = f"{NET}_{k}.in.f32", f"{NET}_{k}.out0.f32"
        (pdir / fin).write_bytes(x.astype("<f4").tobytes())
        (pdir / fout).write_bytes(e_ref.astype("<f4").reshape(1, 128).tobytes())
        cases.append({
            "source": f"{rel_data(path)}; {how}; input = (pixel - [122.782, 117.001, 104.298]) / 256 "
                      "in float32 (dlib input_rgb_image_sized), NCHW",
            "input": fin, "input_shape": [1, 3, 150, 150],
            "outputs": [{"file": fout, "shape": [1, 128]}],
            "max_abs_diff": float(np.abs(e_ref - e_onnx).max()),
        })
    parity_max = max(c["max_abs_diff"] for c in cases)
    reference = (f"dlib {dlib.__version__} (PyPI dlib-bin 20.0.1.post1, CPU) "
                 "face_recognition_model_v1(dlib_face_recognition_resnet_model_v1.dat)"
                 ".compute_face_descriptor(chip_150x150_rgb_uint8, num_jitters=0)")
    doc = {"model": ONNX_FILE, "reference": reference, "cases": cases}
    (pdir / f"{NET}.json").write_text(json.dumps(doc, indent=2) + "\n")

    # ---- manifest ---------------------------------------------------------------------------
    tmpl = ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in TEMPLATE)
    toml = f"""id = "dlib-resnet"
kind = "embedder"
file = "{ONNX_FILE}"
sha256 = "{onnx_sha}"
input_shape = [1, 3, 150, 150]         # NCHW RGB; input "{INPUT_NAME}", output "{OUTPUT_NAME}" [N, 128]
mean = [122.782, 117.001, 104.298]     # input = (pixel - mean) / std, per RGB channel (f32)
std = [256.0, 256.0, 256.0]
template_size = [150, 150]             # [width, height] of the aligned chip
template = [{tmpl}]  # left eye, right eye, nose, left mouth, right mouth (image left/right)
output_dim = 128
metric = "cosine"                      # on L2-normalised embeddings (dlib itself uses L2 < 0.6 on raw descriptors)
threshold = 0.0                        # leave 0.0; the lead fills it from a calibration

[source]
package = "PyPI {PKG_NAME}=={PKG_VERSION} (sdist face_recognition_models-0.3.0.tar.gz, sha256 {SDIST_SHA256})"
path = "{MEMBER}"
sha256 = "{DAT_SHA256}"
licence = "CC0 1.0 Universal / public domain: the package's LICENSE file is CC0 1.0 and its README says the models were created by Davis King (dlib-models) and are licensed in the public domain or under CC0 1.0 Universal. Note: the package metadata (setup.py classifiers, PKG-INFO) says 'MIT license', which refers to the packaging."

[parity]
reference = "{reference}"
max_abs_diff = {parity_max:.3g}
output_norm = {np.mean(norms):.3f}
"""
    (OUT / MANIFEST).write_text(keep_threshold(OUT / MANIFEST, toml))
    print(f"dlib-resnet: {ONNX_FILE} {len(blob)} B sha256 {onnx_sha}; max|diff| vs dlib "
          f"{max_diff:.3g} ({len(norms)} images), parity {parity_max:.3g}; "
          f"aligned L2 same {sanity['dlib_aligned']['l2_same_mean']:.3f} / diff "
          f"{sanity['dlib_aligned']['l2_diff_mean']:.3f}")


if __name__ == "__main__":
    main()
