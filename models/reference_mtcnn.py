#!/usr/bin/env python3
"""Independent Python + onnxruntime reference of facenet-pytorch 2.6.0 `detect_face` (MTCNN).

Usage (from the repository root):
    models/.venv/bin/python models/reference_mtcnn.py [--crop clamp|zero-pad] [--json] IMAGE...

Runs the three converted networks (models/{pnet,rnet,onet}.onnx) through the cascade of
facenet_pytorch/models/utils/detect_face.py (minsize 20, thresholds 0.6/0.7/0.7, factor 0.709),
re-implemented here in numpy with the same arithmetic, step by step:

  * images decoded with PIL and converted to RGB (PIL does not apply EXIF orientation);
  * pyramid: scale = 12/minsize * 0.709^k (Python floats) while min(h, w)*scale >= 12; P-Net input
    int(h*scale + 1) x int(w*scale + 1);
  * `imresample` = torch `interpolate(mode="area")` = adaptive average pooling on float32: output
    index i averages input [floor(i*in/out), ceil((i+1)*in/out)); computed as an exact window sum
    then `sum / kh / kw` in float32, as ATen's CPU kernel does;
  * generateBoundingBox: cells with prob >= 0.6, q1 = floor((2*xy + 1)/scale),
    q2 = floor((2*xy + 12)/scale), float32;
  * stages 1 and 2 use torchvision `batched_nms` (IoU with areas (x2-x1)*(y2-y1), no +1; stable
    descending sort; suppress when IoU > threshold): 0.5 per scale, 0.7 across scales, 0.7 after
    R-Net; the last stage uses facenet-pytorch's `nms_numpy` with 'Min' and +1 areas, 0.7;
  * stage-1 regression relative to (x2-x1, y2-y1); `bbreg` relative to (x2-x1+1, y2-y1+1);
    `rerec` squares around the centre; landmarks x = (x2-x1+1)*p + x1 - 1 of the box before its
    final bbreg; no rerec after O-Net;
  * R-Net / O-Net crops (`pad`): window columns trunc(x1)..trunc(x2) (1-based, inclusive), rows
    likewise.
      --crop clamp     (default, facenet-pytorch): the window is clamped to the image and the
                       clamped part is resized to 24x24 / 48x48 (so a box leaving the image gets
                       its visible part stretched);
      --crop zero-pad  (original MTCNN, and the Rust cascade per models.md): the full window is
                       taken, pixels outside the image are 0, then resized.
    A window with no area is skipped. facenet-pytorch skips it from the batch but not from the box
    list (rows then no longer line up and it raises); here the box is dropped and a warning printed.

Diagnostic switches (not part of facenet-pytorch; they emulate choices of the Rust cascade, to
tell those apart from real bugs):
  --resample fir-box   resize as fast_image_resize 6.1 Convolution(Box) does on U8x3 (Pillow-style
                       box weights in i16 fixed point, vertical pass first, u8 after each pass),
                       instead of torch "area" on float;
  --union-nms plus-one IoU with +1 areas/intersections in stages 1-2 (original MTCNN style);
  --f32-scales         pyramid scales and sizes computed iteratively in f32, as detect.rs does.

Checked: with --crop clamp (default) it reproduced facenet-pytorch 2.6.0's own detect_face (run with
torch 2.15 + torchvision 0.29.2 in a scratch venv) on 70 images (no-face, tricky, many-face, VOC,
LFW, obama.jpg): same faces on all 70, boxes/landmarks within 4.4e-4 px, scores within 3e-7.
With --crop zero-pad --resample fir-box --union-nms plus-one --f32-scales it reproduced the Rust
cascade (src/vision/detect.rs) exactly on the same 70 images decoded to PNG by PIL.
Ties: nms_numpy takes the LAST of equal top scores in index order (numpy argsort, <= 16 boxes);
O-Net scores saturate near 1.0, so exact float32 ties do occur.

Output: per image either a readable block or (with --json) one JSON line
  {"image": PATH, "faces": [{"box": [x1,y1,x2,y2], "score": s, "landmarks": [[x,y] x5]}]}
faces in the reference's order (best score first after the final NMS).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

F32 = np.float32
HERE = os.path.dirname(os.path.abspath(__file__))
STRIDE = 2
CELL = 12


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------

def _area_bounds(n_in, n_out):
    """Adaptive-pooling window [start, end) of every output index along one axis."""
    i = np.arange(n_out, dtype=np.int64)
    start = (i * n_in) // n_out
    end = ((i + 1) * n_in + n_out - 1) // n_out
    return start, end


def resize_area(img, out_h, out_w):
    """torch.nn.functional.interpolate(img, (out_h, out_w), mode="area") for one image.

    img: [C, H, W] holding integer pixel values (uint8 or float). Returns float32 [C, out_h, out_w].
    The window sums are exact (integral image in int64), then divided like ATen: sum / kh / kw in
    float32.
    """
    c, h, w = img.shape
    src = np.asarray(img, dtype=np.int64)
    integral = np.zeros((c, h + 1, w + 1), dtype=np.int64)
    integral[:, 1:, 1:] = src.cumsum(1).cumsum(2)
    ys, ye = _area_bounds(h, out_h)
    xs, xe = _area_bounds(w, out_w)
    y0, y1 = ys[:, None], ye[:, None]
    x0, x1 = xs[None, :], xe[None, :]
    sums = (integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0])
    kh = (ye - ys).astype(F32)[:, None]
    kw = (xe - xs).astype(F32)[None, :]
    return (sums.astype(F32) / kh) / kw


def _fir_box_coefficients(n_in, n_out):
    """fast_image_resize 6.1 `precompute_coefficients` for the Box filter (support 0.5, adaptive
    kernel size) followed by its `Normalizer16` (i16 fixed point). Returns (start [n_out],
    coeffs [n_out, window] int64, precision)."""
    scale = n_in / n_out
    filter_scale = max(scale, 1.0)
    radius = 0.5 * filter_scale
    window = int(np.ceil(radius)) * 2 + 1
    recip = 1.0 / filter_scale
    starts, rows = [], []
    for o in range(n_out):
        centre_in = (o + 0.5) * scale
        x_min = int(max(np.floor(centre_in - radius), 0.0))
        x_max = int(min(np.ceil(centre_in + radius), float(n_in)))
        centre = centre_in - 0.5
        start, weights = x_min, []
        for x in range(x_min, x_max):
            t = (x - centre) * recip
            wgt = 1.0 if (t > -0.5 and t <= 0.5) else 0.0
            if x == start and wgt == 0.0:
                start += 1
            else:
                weights.append(wgt)
        while weights and weights[-1] == 0.0:
            weights.pop()
        total = sum(weights)
        if total != 0.0:
            weights = [v / total for v in weights]
        starts.append(start)
        rows.append(weights + [0.0] * (window - len(weights)))
    coeffs = np.asarray(rows, dtype=np.float64)
    max_w = coeffs.max() if coeffs.size else 0.0
    precision = 0
    for p in range(22):
        precision = p
        if int(np.floor(max_w * (1 << (p + 1)) + 0.5)) >= (1 << 15):  # f64::round, weights >= 0
            break
    q = np.sign(coeffs) * np.floor(np.abs(coeffs) * (1 << precision) + 0.5)
    return np.asarray(starts, dtype=np.int64), q.astype(np.int64), precision


def _fir_box_pass(src, n_out, axis):
    """One u8 convolution pass along `axis` (1 = rows/vertical, 2 = columns/horizontal)."""
    n_in = src.shape[axis]
    starts, q, precision = _fir_box_coefficients(n_in, n_out)
    acc = np.full([n_out if a == axis else d for a, d in enumerate(src.shape)],
                  1 << (precision - 1), dtype=np.int64)
    s = src.astype(np.int64)
    for k in range(q.shape[1]):
        idx = np.minimum(starts + k, n_in - 1)
        taken = np.take(s, idx, axis=axis)
        shape = [1, 1, 1]
        shape[axis] = n_out
        acc += taken * q[:, k].reshape(shape)
    return np.clip(acc >> precision, 0, 255).astype(np.uint8)


def resize_fir_box(img, out_h, out_w):
    """fast_image_resize Convolution(Box) on U8x3, as detect.rs calls it: u8 in, u8 out; for u8
    images the vertical pass runs first, each pass rounds to u8; a pass is skipped when that side
    keeps its size."""
    x = np.asarray(img, dtype=np.uint8)
    if x.shape[1] != out_h:
        x = _fir_box_pass(x, out_h, 1)
    if x.shape[2] != out_w:
        x = _fir_box_pass(x, out_w, 2)
    return x.astype(F32)


def normalise(x):
    return ((x - F32(127.5)) * F32(0.0078125)).astype(F32)


# --------------------------------------------------------------------------------------------
# Box helpers (float32 throughout, as the torch tensors are)
# --------------------------------------------------------------------------------------------

def nms_torchvision(boxes, scores, threshold, plus_one=False):
    """torchvision.ops.nms: indices kept, best score first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k].astype(F32) for k in range(4))
    one = F32(1) if plus_one else F32(0)
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores.astype(F32), kind="stable")
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        if rest.size == 0:
            continue
        iw = np.maximum(F32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        ih = np.maximum(F32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = iw * ih
        iou = inter / (areas[i] + areas[rest] - inter)
        # torchvision compares the float IoU with the double threshold.
        suppressed[rest[iou.astype(np.float64) > threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def nms_min_plus_one(boxes, scores, threshold):
    """facenet-pytorch nms_numpy(..., 'Min'): +1 areas, overlap over the smaller box."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k].astype(F32) for k in range(4))
    areas = (x2 - x1 + F32(1)) * (y2 - y1 + F32(1))
    remaining = np.argsort(scores)  # ascending, numpy's default sort: same tie order as the original
    keep = []
    while remaining.size > 0:
        best = remaining[-1]
        keep.append(best)
        others = remaining[:-1]
        iw = np.maximum(F32(0), np.minimum(x2[best], x2[others]) - np.maximum(x1[best], x1[others]) + F32(1))
        ih = np.maximum(F32(0), np.minimum(y2[best], y2[others]) - np.maximum(y1[best], y1[others]) + F32(1))
        overlap = (iw * ih) / np.minimum(areas[best], areas[others])
        remaining = others[overlap <= F32(threshold)]
    return np.asarray(keep, dtype=np.int64)


def regress_box(boxes, reg):
    """bbreg: offsets relative to the inclusive (+1) box size."""
    w = boxes[:, 2] - boxes[:, 0] + F32(1)
    h = boxes[:, 3] - boxes[:, 1] + F32(1)
    return np.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                     boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h], 1).astype(F32)


def square(boxes):
    """rerec: grow the shorter side around the centre."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    x1 = boxes[:, 0] + w * F32(0.5) - side * F32(0.5)
    y1 = boxes[:, 1] + h * F32(0.5) - side * F32(0.5)
    return np.stack([x1, y1, x1 + side, y1 + side], 1).astype(F32)


# --------------------------------------------------------------------------------------------
# The cascade
# --------------------------------------------------------------------------------------------

class ReferenceMtcnn:
    def __init__(self, model_dir=HERE, minsize=20, thresholds=(0.6, 0.7, 0.7), factor=0.709,
                 crop="clamp", resample="area", union_nms="torchvision", f32_scales=False):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        load = lambda name: ort.InferenceSession(
            os.path.join(model_dir, name), opts, providers=["CPUExecutionProvider"])
        self.pnet, self.rnet, self.onet = load("pnet.onnx"), load("rnet.onnx"), load("onet.onnx")
        self.minsize, self.thresholds, self.factor = minsize, thresholds, factor
        if crop not in ("clamp", "zero-pad"):
            raise ValueError(crop)
        self.crop = crop
        self.resize = {"area": resize_area, "fir-box": resize_fir_box}[resample]
        self.plus_one = {"torchvision": False, "plus-one": True}[union_nms]
        self.f32_scales = f32_scales
        self.warnings = []

    # -- pyramid ------------------------------------------------------------------------------
    def pyramid(self, h, w):
        """[(scale, out_h, out_w)]"""
        levels = []
        if self.f32_scales:  # detect.rs: Mtcnn::scales + scaled_size, all f32
            m = F32(CELL) / F32(max(self.minsize, CELL))
            min_side, scale = F32(min(h, w)) * m, m
            while min_side >= F32(CELL):
                levels.append((float(scale), int(F32(h) * scale + F32(1)), int(F32(w) * scale + F32(1))))
                scale = F32(scale * F32(self.factor))
                min_side = F32(min_side * F32(self.factor))
            return levels
        m = 12.0 / self.minsize
        minl = min(h, w) * m
        scale = m
        while minl >= 12:
            levels.append((scale, int(h * scale + 1), int(w * scale + 1)))
            scale = scale * self.factor
            minl = minl * self.factor
        return levels

    # -- crops ----------------------------------------------------------------------------------
    def crops(self, img, boxes, side):
        """Crop each box as `pad` + imresample do. Returns (kept indices, batch [N,3,side,side])."""
        _, h, w = img.shape
        t = np.trunc(boxes).astype(np.int64)  # boxes.trunc().int()
        kept, batch = [], []
        for k in range(len(boxes)):
            x, y, ex, ey = (int(v) for v in t[k])
            if self.crop == "clamp":
                x, y = max(x, 1), max(y, 1)
                ex, ey = min(ex, w), min(ey, h)
                if not (ey > y - 1 and ex > x - 1):
                    self.warnings.append(f"empty crop for box {boxes[k].tolist()} (facenet-pytorch would fail)")
                    continue
                patch = img[:, y - 1:ey, x - 1:ex]
            else:
                cw, ch = ex - x + 1, ey - y + 1
                if cw <= 0 or ch <= 0:
                    self.warnings.append(f"empty crop for box {boxes[k].tolist()}")
                    continue
                patch = np.zeros((3, ch, cw), dtype=img.dtype)
                sx0, sx1 = max(x - 1, 0), min(ex, w)
                sy0, sy1 = max(y - 1, 0), min(ey, h)
                if sx0 < sx1 and sy0 < sy1:
                    patch[:, sy0 - (y - 1):sy1 - (y - 1), sx0 - (x - 1):sx1 - (x - 1)] = img[:, sy0:sy1, sx0:sx1]
            kept.append(k)
            batch.append(self.resize(patch, side, side))
        if not batch:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3, side, side), F32)
        return np.asarray(kept, dtype=np.int64), normalise(np.stack(batch))

    # -- stages ---------------------------------------------------------------------------------
    def stage1(self, img):
        _, h, w = img.shape
        boxes, scores, regs = [], [], []
        for scale, sh, sw in self.pyramid(h, w):
            data = normalise(self.resize(img, sh, sw))[None]
            reg, prob = self.pnet.run(None, {"input": data})
            reg, prob = reg[0], prob[0, 1]
            ys, xs = np.nonzero(prob >= F32(self.thresholds[0]))  # row-major, like torch.nonzero
            if ys.size == 0:
                continue
            cell = np.stack([xs, ys], 1).astype(F32)
            s = F32(scale)
            b = np.concatenate([np.floor((F32(STRIDE) * cell + F32(1)) / s),
                                np.floor((F32(STRIDE) * cell + F32(CELL)) / s)], 1).astype(F32)
            sc = prob[ys, xs].astype(F32)
            rg = reg[:, ys, xs].T.astype(F32)
            pick = nms_torchvision(b, sc, 0.5, self.plus_one)
            boxes.append(b[pick]); scores.append(sc[pick]); regs.append(rg[pick])
        if not boxes:
            return np.zeros((0, 4), F32)
        boxes, scores, regs = np.concatenate(boxes), np.concatenate(scores), np.concatenate(regs)
        pick = nms_torchvision(boxes, scores, 0.7, self.plus_one)
        boxes, regs = boxes[pick], regs[pick]
        rw = boxes[:, 2] - boxes[:, 0]
        rh = boxes[:, 3] - boxes[:, 1]
        boxes = np.stack([boxes[:, 0] + regs[:, 0] * rw, boxes[:, 1] + regs[:, 1] * rh,
                          boxes[:, 2] + regs[:, 2] * rw, boxes[:, 3] + regs[:, 3] * rh], 1).astype(F32)
        return square(boxes)

    def stage2(self, img, boxes):
        kept, batch = self.crops(img, boxes, 24)
        if len(kept) == 0:
            return np.zeros((0, 4), F32)
        boxes = boxes[kept]
        reg, prob = self.rnet.run(None, {"input": batch})
        score = prob[:, 1]
        ok = score > F32(self.thresholds[1])
        boxes, score, reg = boxes[ok], score[ok], reg[ok]
        pick = nms_torchvision(boxes, score, 0.7, self.plus_one)
        return square(regress_box(boxes[pick], reg[pick]))

    def stage3(self, img, boxes):
        kept, batch = self.crops(img, boxes, 48)
        if len(kept) == 0:
            return np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros((0, 5, 2), F32)
        boxes = boxes[kept]
        reg, marks, prob = self.onet.run(None, {"input": batch})
        score = prob[:, 1]
        ok = score > F32(self.thresholds[2])
        boxes, score, reg, marks = boxes[ok], score[ok], reg[ok], marks[ok]
        w = boxes[:, 2] - boxes[:, 0] + F32(1)
        h = boxes[:, 3] - boxes[:, 1] + F32(1)
        px = w[:, None] * marks[:, :5] + boxes[:, 0:1] - F32(1)
        py = h[:, None] * marks[:, 5:] + boxes[:, 1:2] - F32(1)
        points = np.stack([px, py], 2).astype(F32)
        boxes = regress_box(boxes, reg)
        pick = nms_min_plus_one(boxes, score, 0.7)
        return boxes[pick], score[pick], points[pick]

    def detect(self, rgb):
        """rgb: uint8 [H, W, 3]. Returns (boxes [N,4], scores [N], landmarks [N,5,2])."""
        self.warnings = []
        img = np.ascontiguousarray(np.transpose(rgb, (2, 0, 1)))
        empty = (np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros((0, 5, 2), F32))
        boxes = self.stage1(img)
        if len(boxes) == 0:
            return empty
        boxes = self.stage2(img, boxes)
        if len(boxes) == 0:
            return empty
        return self.stage3(img, boxes)


def load_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def faces_json(boxes, scores, points):
    return [{"box": [float(v) for v in b], "score": float(s),
             "landmarks": [[float(x), float(y)] for x, y in p]}
            for b, s, p in zip(boxes, scores, points)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", choices=["clamp", "zero-pad"], default="clamp")
    ap.add_argument("--json", action="store_true", help="one JSON line per image")
    ap.add_argument("--minsize", type=float, default=20.0)
    ap.add_argument("--resample", choices=["area", "fir-box"], default="area",
                    help="diagnostic: fir-box emulates the Rust Box-filter resampling")
    ap.add_argument("--union-nms", choices=["torchvision", "plus-one"], default="torchvision",
                    help="diagnostic: plus-one uses +1 IoU in stages 1-2 (as detect.rs)")
    ap.add_argument("--f32-scales", action="store_true",
                    help="diagnostic: pyramid computed in f32 as detect.rs does")
    ap.add_argument("--models", default=HERE, help="directory with pnet/rnet/onet.onnx")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args(argv)
    det = ReferenceMtcnn(args.models, minsize=args.minsize, crop=args.crop, resample=args.resample,
                         union_nms=args.union_nms, f32_scales=args.f32_scales)
    status = 0
    for path in args.images:
        try:
            boxes, scores, points = det.detect(load_rgb(path))
        except Exception as e:  # one bad file must not stop a batch
            status = 1
            print(f"reference_mtcnn: {path}: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": path, "error": str(e), "faces": []}))
            continue
        for msg in det.warnings:
            print(f"reference_mtcnn: {path}: {msg}", file=sys.stderr)
        faces = faces_json(boxes, scores, points)
        if args.json:
            print(json.dumps({"image": path, "faces": faces}), flush=True)
        else:
            print(f"{path}: {len(faces)} face(s)")
            for f in faces:
                b = ", ".join(f"{v:.2f}" for v in f["box"])
                lm = " ".join(f"({x:.1f},{y:.1f})" for x, y in f["landmarks"])
                print(f"  box [{b}] score {f['score']:.5f} landmarks {lm}")
    return status


if __name__ == "__main__":
    sys.exit(main())
