#!/usr/bin/env python3
"""Make the int8 and f16 variants of facegate's models from the fp32 ONNX files in this folder.

Usage (from the repository root; `models/convert` runs it after the converters):
    models/.venv/bin/python models/quantize.py [--out DIR] [--src DIR] [--only NAME]

For each fp32 model it writes, into --out (default models/):

  * int8, by onnxruntime `quantize_static` in QDQ form (standard-domain QuantizeLinear /
    DequantizeLinear around the float ops, the only int8 form tract 0.23 loads: the QOperator form
    uses com.microsoft ops for Add, pooling and Gemm), int8 weights per output channel, uint8
    activations, MinMax ranges. Quantised op types: Conv, Gemm, MatMul, Add. Softmax, PRelu and
    the pools stay float (tract folds DQ->Softmax->Q into a lookup table that breaks MTCNN).
    ORT's `value_info` (symbolic batch) is stripped: facegate pins the input shape itself.
      - MTCNN: pnet-int8.onnx, rnet-int8.onnx, onet-int8.onnx, manifest mtcnn-int8.toml;
      - embedders: mobilefacenet-int8.onnx, dlib_resnet-int8.onnx, manifests
        mobilefacenet-arcface-int8.toml, dlib-resnet-int8.toml.
  * f16 (embedders only): every float initializer stored as float16 and the graph computing in
    float16, with a Cast at the input and output so the interface stays float32:
    mobilefacenet-f16.onnx, dlib_resnet-f16.onnx, manifests *-f16.toml.

Calibration uses REAL faces, from a split disjoint from every accuracy measurement:
../shared/data/dev/lfw_disjoint (1,463 LFW people not in the LFW folds 1-2 pairs). The embedders
are calibrated on aligned chips: faces found by models/reference_mtcnn.py (the fp32 MTCNN on
onnxruntime, with the Rust cascade's options), the one nearest the image centre, aligned with the
same 5-point similarity transform and bilinear sampling as src/vision/align.rs. MTCNN is
calibrated on the very tensors its three nets see while detecting in those images (every P-Net
pyramid level, every R-Net and O-Net crop batch).

The output is deterministic: the calibration images are the sorted file list, every k-th; ORT
runs single-threaded. `models/convert --check` regenerates these files and compares them byte for
byte. Measured lines of an existing manifest (threshold, lfw_accuracy and their comments) are
carried over, as for the fp32 manifests.
"""

import argparse
import hashlib
import os
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from manifest_common import keep_measured  # noqa: E402
from reference_mtcnn import ReferenceMtcnn, load_rgb  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"
CALIB_DIR = DATA / "dev" / "lfw_disjoint"
F32 = np.float32

EMBEDDERS = {
    # short name: (fp32 manifest, int8/f16 file stem)
    "mobilefacenet": ("mobilefacenet-arcface.toml", "mobilefacenet"),
    "dlib": ("dlib-resnet.toml", "dlib_resnet"),
}
QUANTISED_OPS = ["Conv", "Gemm", "MatMul", "Add"]
# Activation ranges per model, chosen by the cosine drift int8 vs fp32 on held-out real chips
# (docs/accuracy.md, "int8 and f16 variants"): MinMax kept MobileFaceNet at a mean cosine of
# 0.944, the 99.999th percentile at 0.962; dlib and MTCNN are fine with MinMax.
METHODS = {"mtcnn": "minmax", "mobilefacenet": "percentile", "dlib": "minmax"}
PERCENTILE = 99.999
# Percentile histograms keep every activation of every chip in memory (about 4 GB for 150
# MobileFaceNet chips): calibrate on every other chip.
CHIP_STEP = {"mtcnn": 1, "mobilefacenet": 2, "dlib": 1}


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibration_images(count):
    """Every k-th image of the sorted lfw_disjoint list, `count` in all."""
    images = sorted(p for p in CALIB_DIR.rglob("*.jpg"))
    if not images:
        raise SystemExit(f"no calibration images in {CALIB_DIR}")
    step = max(1, len(images) // count)
    return images[::step][:count]


def rust_cascade(model_dir):
    """The fp32 MTCNN on onnxruntime with the options that reproduce src/vision/detect.rs."""
    ort.set_default_logger_severity(3)
    return ReferenceMtcnn(str(model_dir), crop="zero-pad", resample="fir-box",
                          union_nms="plus-one", f32_scales=True)


# --------------------------------------------------------------------------------------------
# Alignment, as src/vision/align.rs does it (f64 estimate, f32 sampling)
# --------------------------------------------------------------------------------------------

def similarity(src, dst):
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    p, q = src - ms, dst - md
    var = (p ** 2).sum()
    a = (p * q).sum() / var
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / var
    tx = md[0] - (a * ms[0] - b * ms[1])
    ty = md[1] - (b * ms[0] + a * ms[1])
    return F32(a), F32(b), F32(tx), F32(ty)


def align(rgb, landmarks, template, width, height):
    a, b, tx, ty = similarity(landmarks, template)
    det = a * a + b * b
    ia, ib = a / det, -b / det
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    ys, xs = np.mgrid[0:height, 0:width].astype(F32)
    sx = ia * xs - ib * ys + itx
    sy = ib * xs + ia * ys + ity
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    h, w = rgb.shape[:2]
    img = rgb.astype(F32)

    def px(xi, yi):
        ok = (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
        out = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
        return np.where(ok[..., None], out, F32(0))

    p00, p10, p01, p11 = px(x0, y0), px(x0 + 1, y0), px(x0, y0 + 1), px(x0 + 1, y0 + 1)
    top = p00 + (p10 - p00) * fx
    bottom = p01 + (p11 - p01) * fx
    return np.clip(np.round(top + (bottom - top) * fy), 0, 255).astype(np.uint8)


class Recorder:
    """Wraps an onnxruntime session and keeps every input it is given."""

    def __init__(self, session):
        self.session, self.inputs = session, []

    def run(self, names, feeds):
        self.inputs.append(feeds["input"])
        return self.session.run(names, feeds)


def detect_calibration_set(fp32_dir, count):
    """Detect in the calibration images; returns (central faces' landmarks per image, the P-Net,
    R-Net and O-Net input tensors seen on the way)."""
    det = rust_cascade(fp32_dir)
    det.pnet, det.rnet, det.onet = Recorder(det.pnet), Recorder(det.rnet), Recorder(det.onet)
    faces = []
    for path in calibration_images(count):
        rgb = load_rgb(path)
        boxes, _, points = det.detect(rgb)
        if len(boxes) == 0:
            continue
        h, w = rgb.shape[:2]
        centre = ((boxes[:, 0] + boxes[:, 2]) / 2 - w / 2) ** 2 + ((boxes[:, 1] + boxes[:, 3]) / 2 - h / 2) ** 2
        faces.append((rgb, points[int(np.argmin(centre))]))
    return faces, det.pnet.inputs, det.rnet.inputs, det.onet.inputs


class Feeds(CalibrationDataReader):
    def __init__(self, tensors):
        self.it = iter([{"input": t} for t in tensors])

    def get_next(self):
        return next(self.it, None)


# --------------------------------------------------------------------------------------------
# int8 and f16
# --------------------------------------------------------------------------------------------

def strip_value_info(path):
    """ORT writes value_info with a symbolic batch; facegate pins the input shape, and tract
    refuses the conflict. Also drop the producer so the bytes depend on the graph only."""
    m = onnx.load(str(path))
    del m.graph.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def quantise(src, dst, tensors, method):
    method = method.split()[0]
    calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}[method]
    extra = {}
    if method != "minmax":
        extra = {"CalibPercentile": PERCENTILE}
    quantize_static(
        str(src), str(dst), Feeds(tensors),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=QUANTISED_OPS,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=calib,
        calibration_providers=["CPUExecutionProvider"],
        extra_options=extra,
    )
    strip_value_info(dst)


def to_float16(src, dst):
    """Store every float initializer as float16 and compute in float16; Casts keep the graph's
    input and output float32 so the Rust side feeds and reads float32 as for fp32."""
    m = onnx.load(str(src))
    g = m.graph
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in g.node:
        if node.op_type in ("Constant", "Cast", "RandomNormal"):
            raise SystemExit(f"{src}: op {node.op_type} is not handled by the float16 conversion")
    inp, outs = g.input[0], list(g.output)
    cast_in = helper.make_node("Cast", [inp.name], [inp.name + "_f16"], to=TensorProto.FLOAT16,
                               name="cast_input_f16")
    for node in g.node:
        node.input[:] = [inp.name + "_f16" if i == inp.name else i for i in node.input]
    casts_out = []
    for o in outs:
        for node in g.node:
            node.output[:] = [o.name + "_f16" if x == o.name else x for x in node.output]
            node.input[:] = [o.name + "_f16" if x == o.name else x for x in node.input]
        casts_out.append(helper.make_node("Cast", [o.name + "_f16"], [o.name], to=TensorProto.FLOAT,
                                          name=f"cast_{o.name}_f32"))
    nodes = [cast_in] + list(g.node) + casts_out
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(dst))


# --------------------------------------------------------------------------------------------
# Checks on real faces (onnxruntime; facegate eval measures the real pipeline afterwards)
# --------------------------------------------------------------------------------------------

def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def cosine_drift(fp32, variant, chips):
    a, b = session(fp32), session(variant)
    cos = []
    for x in chips:
        u = a.run(None, {"input": x})[0][0]
        v = b.run(None, {"input": x})[0][0]
        cos.append(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    return np.array(cos)


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------

VARIANT_NOTE = {
    "int8": "onnxruntime {ort} quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
            "{method} ranges over {n} {what} from ../shared/data/dev/lfw_disjoint (every k-th "
            "sorted image); quantised ops {ops}; Softmax, PRelu and pools float",
    "f16": "float16 initializers and float16 compute, Cast float32 -> float16 at the input and "
           "back at the output (models/quantize.py)",
}


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def embedder_manifest(base_path, base, precision, file, sha, note, drift, out_path):
    """The fp32 manifest with a new id, file, sha256 and precision; the rest (contract, source)
    is copied line by line, so the variant can never disagree with its base."""
    lines = base_path.read_text().split("\n")
    head = [f"# {base['id']} in {precision}, made by models/quantize.py from {base['file']} "
            f"(sha256 {base['sha256'][:16]}...)"]
    out = []
    for ln in lines:
        if ln.startswith("# ") and not out and not ln.startswith("# threshold:"):
            continue  # the base's own title comment
        if ln.startswith("# threshold:"):
            continue  # the fp32 calibration; replaced below
        if ln.startswith("# lfw_accuracy:") or re.match(r"lfw_accuracy\s*=", ln):
            continue  # measured for fp32, not for this variant
        if re.match(r"threshold\s*=", ln):
            out += [f"# threshold: the fp32 model's ({base_path.name}), not recalibrated for "
                    f"this variant", ln]
            continue
        if re.match(r"id\s*=", ln):
            out += [f'id = "{base["id"]}-{precision}"', f'variant_of = "{base["id"]}"',
                    f'precision = "{precision}"']
            continue
        if re.match(r"file\s*=", ln):
            out.append(f'file = "{file}"')
            continue
        if re.match(r"sha256\s*=", ln) and not any(l.startswith("[") for l in out):
            out.append(f'sha256 = "{sha}"')
            continue
        if ln.startswith("[parity]"):
            break
        out.append(ln)
    while out and out[-1] == "":
        out.pop()
    out += ["", "[variant]", f"made_from = {toml_str(base['file'])}",
            f"made_from_sha256 = {toml_str(base['sha256'])}", f"method = {toml_str(note)}",
            f"cosine_to_fp32_min = {drift.min():.4f}     # onnxruntime, calibration chips",
            f"cosine_to_fp32_mean = {drift.mean():.5f}", ""]
    text = "\n".join(head + out)
    return keep_measured(out_path, text)


def detector_manifest(base_path, base, files, note, out_path):
    # fp32's measured accuracy does not describe the int8 nets (keep_measured restores the int8's).
    text = re.sub(r"^# lfw_accuracy:[^\n]*\n|^lfw_accuracy = [^\n]*\n", "", base_path.read_text(),
                  flags=re.M)
    text = re.sub(r'^id = "([^"]+)"', lambda m: f'id = "{m.group(1)}-int8"\nvariant_of = '
                  f'"{m.group(1)}"\nprecision = "int8"', text, count=1, flags=re.M)
    for net, (file, sha) in files.items():
        orig = base[net]
        text = text.replace(f'file = "{orig["file"]}"', f'file = "{file}"')
        text = text.replace(f'sha256 = "{orig["sha256"]}"', f'sha256 = "{sha}"\n'
                            f'made_from = "{orig["file"]}"\nmade_from_sha256 = "{orig["sha256"]}"')
    # The fp32 parity numbers do not describe the int8 nets.
    text = re.sub(r"\n\[(pnet|rnet|onet)\.parity\]\n(?:[^\[\n][^\n]*\n?)*", "\n", text)
    text = re.sub(r"^# MTCNN[^\n]*", "# MTCNN in int8, made by models/quantize.py from the fp32 nets "
                  "of mtcnn.toml", text, count=1, flags=re.M)
    text = text.rstrip("\n") + f"\n\n[variant]\nmethod = {toml_str(note)}\n"
    text = re.sub(r"\n{3,}", "\n\n", text)
    return keep_measured(out_path, text)


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE), help="output folder (default: models/)")
    ap.add_argument("--src", default=None, help="folder of the fp32 models (default: --out)")
    ap.add_argument("--only", choices=["mtcnn", "mobilefacenet", "dlib"], action="append")
    ap.add_argument("--calib", type=int, default=300, help="calibration images (default 300)")
    ap.add_argument("--method", choices=["minmax", "percentile", "entropy"],
                    help=f"activation ranges for every model (default: {METHODS})")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(args.src) if args.src else out
    only = args.only or ["mtcnn", "mobilefacenet", "dlib"]
    ort_version = ort.__version__

    def method_of(model):
        m = args.method or METHODS[model]
        return f"{m} ({PERCENTILE}th)" if m == "percentile" else m

    print(f"calibration: detecting faces in {args.calib} images of {CALIB_DIR}")
    # The fp32 MTCNN finds the calibration faces: the fresh one in --src, else the committed one
    # (e.g. `models/convert --check --only dlib` converts dlib alone into a temporary folder).
    det_dir = src if (src / "pnet.onnx").exists() else HERE
    faces, pnet_in, rnet_in, onet_in = detect_calibration_set(det_dir, args.calib)
    print(f"  {len(faces)} faces; MTCNN tensors: {len(pnet_in)} P-Net levels, "
          f"{sum(len(t) for t in rnet_in)} R-Net crops, {sum(len(t) for t in onet_in)} O-Net crops")

    if "mtcnn" in only:
        base_path = src / "mtcnn.toml"
        base = tomllib.loads(base_path.read_text())
        files = {}
        for net, tensors in (("pnet", pnet_in), ("rnet", rnet_in), ("onet", onet_in)):
            tensors = [t for t in tensors if len(t)]
            dst = out / f"{net}-int8.onnx"
            quantise(src / base[net]["file"], dst, tensors, method_of("mtcnn"))
            files[net] = (dst.name, sha256_file(dst))
            print(f"  {dst.name}: {dst.stat().st_size} B, sha256 {files[net][1]}")
        note = VARIANT_NOTE["int8"].format(
            ort=ort_version, method=method_of("mtcnn"), n=args.calib, ops=", ".join(QUANTISED_OPS),
            what=f"images: {len(pnet_in)} P-Net pyramid levels and the R-Net/O-Net crops of them")
        path = out / "mtcnn-int8.toml"
        path.write_text(detector_manifest(base_path, base, files, note, path))
        print(f"  wrote {path}")

    for name in (n for n in ("mobilefacenet", "dlib") if n in only):
        manifest_name, stem = EMBEDDERS[name]
        base_path = src / manifest_name
        base = tomllib.loads(base_path.read_text())
        (w, h), mean, std = base["template_size"], np.array(base["mean"], F32), np.array(base["std"], F32)
        chips = []
        for rgb, points in faces:
            chip = align(rgb, points, base["template"], w, h).astype(F32)
            chips.append(((chip - mean) / std).transpose(2, 0, 1)[None].copy())
        fp32 = src / base["file"]
        for precision in ("int8", "f16"):
            dst = out / f"{stem}-{precision}.onnx"
            if precision == "int8":
                calib = chips[::CHIP_STEP[name]]
                quantise(fp32, dst, calib, method_of(name))
                note = VARIANT_NOTE["int8"].format(ort=ort_version, method=method_of(name), n=len(calib),
                                                   what=f"aligned {w}x{h} face chips",
                                                   ops=", ".join(QUANTISED_OPS))
            else:
                to_float16(fp32, dst)
                note = VARIANT_NOTE["f16"]
            sha = sha256_file(dst)
            drift = cosine_drift(fp32, dst, chips)
            print(f"  {dst.name}: {dst.stat().st_size} B, sha256 {sha}; cosine to fp32 on "
                  f"{len(chips)} calibration chips: min {drift.min():.4f}, mean {drift.mean():.5f}")
            mpath = out / manifest_name.replace(".toml", f"-{precision}.toml")
            mpath.write_text(embedder_manifest(base_path, base, precision, dst.name, sha, note,
                                               drift, mpath))
            print(f"  wrote {mpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
