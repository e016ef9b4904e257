#!/usr/bin/env python3
"""The onnxruntime side of `facegate bench --compare`: facegate's pipeline, re-implemented on
onnxruntime + numpy + Pillow, over the same ONNX files, timed stage by stage.

Not meant to be run by hand: `facegate bench --compare` starts it (from bench/.venv) and drives it
frame by frame over stdin/stdout, alternating with its own runs so machine load hits both sides
alike. Protocol, one JSON object per line:

  started with  --models DIR --embedder ID --threads N --gallery-people P [--min-face F]
                [--liveness NET,NET]  (nets of minifasnet.toml; none: no liveness stage)
  prints        {"ready": true, "load_ms": ..., "onnxruntime": "1.31.1", "threads": N, ...}
  reads         {"frame": "/path/to.png"}          -> {"times": {...}, "infer": {...}, "faces": [...]}
                {"quit": true}                       -> {"peak_rss_kb": ...} and exits

Contract (docs of models.md, as src/vision/detect.rs implements it): MTCNN pyramid
scale = 12/min_face * 0.709^k (f32) while min(h, w)*scale >= 12, P-Net input int(side*scale + 1),
box-filter ("area") downscaling, (x - 127.5)/128, thresholds 0.6/0.7/0.7, NMS 0.5 per scale and
0.7 across scales (IoU without +1), 0.7 after R-Net, 0.7 "Min" (+1 areas) after O-Net, squared
boxes, zero-padded crops, final score >= 0.9; alignment by the 5-point similarity (Umeyama, no
reflection) with a bilinear warp, black outside; embedding L2-normalised; 1:N search = best
cosine over 5 templates per person (numpy matmul). Liveness (src/vision/liveness.rs): per net,
the face box enlarged by the net's scale around its centre, the scale reduced until the window
fits the image, the window shifted inside the edges and truncated to integers; a bilinear resize
(half-pixel centres, edges clamped, rounded to 8 bits) to 80x80 BGR 0..255; softmax; the mean
"real" probability of the nets.

Resampling: Pillow's BOX filter, which is what fast_image_resize's Convolution(Box) reproduces, so
both sides see (nearly) the same pixels; small rounding differences can move a borderline box.
"""

import argparse
import json
import os
import resource
import sys
import time
import tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image

F32 = np.float32
CELL = F32(12.0)
STRIDE = F32(2.0)


def now():
    return time.perf_counter()


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0 = onnxruntime's default (all physical cores)
    opts.inter_op_num_threads = 1 if threads == 1 else 0
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def nms(boxes, scores, threshold, plus_one):
    """Greedy NMS, best score first (stable), as detect.rs: returns kept indices in order."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    one = F32(1.0) if plus_one else F32(0.0)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one, 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one, 0)
        inter = iw * ih
        if plus_one:
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def square(b):
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    x1 = b[:, 0] + w * F32(0.5) - side * F32(0.5)
    y1 = b[:, 1] + h * F32(0.5) - side * F32(0.5)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(F32)


def regress(b, reg):
    w = b[:, 2] - b[:, 0] + F32(1.0)
    h = b[:, 3] - b[:, 1] + F32(1.0)
    return (b + reg * np.stack([w, h, w, h], axis=1)).astype(F32)


def normalise(rgb):
    """HWC uint8 -> CHW float32, (x - 127.5) / 128."""
    return ((rgb.astype(F32) - F32(127.5)) * F32(1.0 / 128.0)).transpose(2, 0, 1)


def crop_window(box, scale, width, height):
    """The integer window (left, top, right, bottom), inclusive, as liveness.rs crop_window."""
    iw, ih = F32(max(width, 1) - 1), F32(max(height, 1) - 1)
    x1, y1, x2, y2 = (F32(v) for v in box)
    bw, bh = max(x2 - x1, F32(1.0)), max(y2 - y1, F32(1.0))
    scale = min(F32(scale), ih / bh, iw / bw)
    nw, nh = bw * scale, bh * scale
    cx, cy = x1 + bw / F32(2.0), y1 + bh / F32(2.0)
    l, t = cx - nw / F32(2.0), cy - nh / F32(2.0)
    r, b = cx + nw / F32(2.0), cy + nh / F32(2.0)
    if l < 0:
        r, l = r - l, F32(0.0)
    if t < 0:
        b, t = b - t, F32(0.0)
    if r > iw:
        l, r = l - (r - iw), iw
    if b > ih:
        t, b = t - (b - ih), ih
    return [int(min(max(v, F32(0.0)), m)) for v, m in ((l, iw), (t, ih), (r, iw), (b, ih))]


def bgr_planes(rgb, window, w, h):
    """Bilinear resize of the window to w x h, rounded to 8 bits, as NCHW BGR float32."""
    l, t, r, b = window
    src = rgb[t : b + 1, l : r + 1].astype(F32)

    def axis(n_in, n_out):
        ratio = F32(n_in) / F32(n_out)
        s = np.maximum((np.arange(n_out, dtype=F32) + F32(0.5)) * ratio - F32(0.5), F32(0.0))
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), (s - i0).astype(F32)

    x0, x1, fx = axis(src.shape[1], w)
    y0, y1, fy = axis(src.shape[0], h)
    fx, fy = fx[None, :, None], fy[:, None, None]
    top = src[y0][:, x0] * (F32(1.0) - fx) + src[y0][:, x1] * fx
    bot = src[y1][:, x0] * (F32(1.0) - fx) + src[y1][:, x1] * fx
    v = np.floor(top * (F32(1.0) - fy) + bot * fy + F32(0.5))  # >= 0: round half away
    return np.ascontiguousarray(v[:, :, ::-1].transpose(2, 0, 1)[None])


class Pipeline:
    def __init__(self, models, embedder, threads, min_face, liveness=()):
        with open(os.path.join(models, "mtcnn.toml"), "rb") as f:
            det = tomllib.load(f)
        with open(os.path.join(models, f"{embedder}.toml"), "rb") as f:
            self.emb = tomllib.load(f)
        self.pnet = session(os.path.join(models, det["pnet"]["file"]), threads)
        self.rnet = session(os.path.join(models, det["rnet"]["file"]), threads)
        self.onet = session(os.path.join(models, det["onet"]["file"]), threads)
        self.embedder = session(os.path.join(models, self.emb["file"]), threads)
        self.min_face = F32(min_face)
        self.mean = np.array(self.emb["mean"], dtype=F32)
        self.inv_std = F32(1.0) / np.array(self.emb["std"], dtype=F32)
        self.template = np.array(self.emb["template"], dtype=np.float64)
        self.chip = tuple(self.emb["template_size"])
        self.liveness = []
        if liveness:
            with open(os.path.join(models, "minifasnet.toml"), "rb") as f:
                pad = tomllib.load(f)
            self.live_size = tuple(pad["input_size"])
            self.real_class = int(pad["real_class"])
            for name in liveness:
                net = pad[name]
                self.liveness.append(
                    (F32(net["scale"]), session(os.path.join(models, net["file"]), threads))
                )
        self.infer = {}

    def run(self, sess, stage, x):
        t = now()
        out = sess.run(None, {sess.get_inputs()[0].name: x})
        self.infer[stage] = self.infer.get(stage, 0.0) + now() - t
        return out

    def scales(self, w, h):
        m = CELL / max(self.min_face, CELL)
        min_side = F32(min(w, h)) * m
        scale = m
        out = []
        while min_side >= CELL:
            out.append(scale)
            scale = F32(scale * F32(0.709))
            min_side = F32(min_side * F32(0.709))
        return out

    def stage_pnet(self, image):
        w, h = image.size
        boxes, scores, regs = [], [], []
        for s in self.scales(w, h):
            sw, sh = int(F32(w) * s + F32(1.0)), int(F32(h) * s + F32(1.0))
            small = np.asarray(image.resize((sw, sh), Image.BOX))
            reg, prob = self.run(self.pnet, "pnet", normalise(small)[None])
            p = prob[0, 1]
            ys, xs = np.nonzero(p >= F32(0.6))
            if len(ys) == 0:
                continue
            fx, fy = xs.astype(F32), ys.astype(F32)
            b = np.stack(
                [
                    np.floor((STRIDE * fx + 1) / s),
                    np.floor((STRIDE * fy + 1) / s),
                    np.floor((STRIDE * fx + CELL) / s),
                    np.floor((STRIDE * fy + CELL) / s),
                ],
                axis=1,
            ).astype(F32)
            sc = p[ys, xs]
            r = reg[0][:, ys, xs].T
            keep = nms(b, sc, 0.5, False)
            boxes.append(b[keep])
            scores.append(sc[keep])
            regs.append(r[keep])
        if not boxes:
            return np.zeros((0, 4), F32)
        b, sc, r = np.concatenate(boxes), np.concatenate(scores), np.concatenate(regs)
        keep = nms(b, sc, 0.7, False)
        b, r = b[keep], r[keep]
        bw = b[:, 2] - b[:, 0]
        bh = b[:, 3] - b[:, 1]
        b = b + r * np.stack([bw, bh, bw, bh], axis=1)
        return square(b.astype(F32))

    def crops(self, rgb, boxes, side):
        """Zero-padded crops of the 1-based inclusive windows, resized to side x side."""
        ih, iw = rgb.shape[:2]
        t = np.trunc(boxes).astype(np.int64)
        ok = (t[:, 2] - t[:, 0] + 1 > 0) & (t[:, 3] - t[:, 1] + 1 > 0)
        boxes, t = boxes[ok], t[ok]
        batch = np.empty((len(boxes), 3, side, side), F32)
        for k, (x, y, ex, ey) in enumerate(t):
            x0, y0, cw, ch = x - 1, y - 1, ex - x + 1, ey - y + 1
            crop = np.zeros((ch, cw, 3), np.uint8)
            sx0, sx1 = max(x0, 0), min(x0 + cw, iw)
            sy0, sy1 = max(y0, 0), min(y0 + ch, ih)
            if sx0 < sx1 and sy0 < sy1:
                crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
            chip = Image.fromarray(crop).resize((side, side), Image.BOX)
            batch[k] = normalise(np.asarray(chip))
        return boxes, batch

    def stage_rnet(self, rgb, boxes):
        boxes, batch = self.crops(rgb, boxes, 24)
        if len(boxes) == 0:
            return boxes
        reg, prob = self.run(self.rnet, "rnet", batch)
        ok = prob[:, 1] > F32(0.7)
        b, sc, r = boxes[ok], prob[ok, 1], reg[ok]
        keep = nms(b, sc, 0.7, False)
        return square(regress(b[keep], r[keep]))

    def stage_onet(self, rgb, boxes):
        boxes, batch = self.crops(rgb, boxes, 48)
        if len(boxes) == 0:
            return []
        reg, marks, prob = self.run(self.onet, "onet", batch)
        ok = prob[:, 1] > F32(0.7)
        b, sc, r, lm = boxes[ok], prob[ok, 1], reg[ok], marks[ok]
        w = (b[:, 2] - b[:, 0] + 1)[:, None]
        h = (b[:, 3] - b[:, 1] + 1)[:, None]
        lx = w * lm[:, :5] + b[:, 0:1] - 1
        ly = h * lm[:, 5:] + b[:, 1:2] - 1
        final = regress(b, r)
        keep = nms(final, sc, 0.7, True)
        return [
            {
                "box": final[k].tolist(),
                "score": float(sc[k]),
                "landmarks": np.stack([lx[k], ly[k]], axis=1).tolist(),
            }
            for k in keep
            if sc[k] >= F32(0.9)
        ]

    def align(self, image, landmarks):
        """Umeyama similarity landmarks -> template, then a bilinear warp of the chip."""
        src = np.array(landmarks, np.float64)
        dst = self.template
        ms, md = src.mean(0), dst.mean(0)
        p, q = src - ms, dst - md
        var = (p * p).sum()
        a = (p * q).sum() / var
        b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / var
        tx = md[0] - (a * ms[0] - b * ms[1])
        ty = md[1] - (b * ms[0] + a * ms[1])
        det = a * a + b * b
        ia, ib = a / det, -b / det
        itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
        # chip (x, y) -> image (ia x - ib y + itx, ib x + ia y + ity). Pillow samples at pixel
        # centres (x + 0.5) and reads back at -0.5: shift so the mapping equals detect.rs's.
        c = itx + 0.5 - 0.5 * (ia - ib)
        f = ity + 0.5 - 0.5 * (ib + ia)
        return image.transform(
            self.chip, Image.AFFINE, (ia, -ib, c, ib, ia, f), resample=Image.BILINEAR
        )

    def live(self, rgb, box):
        """Mean softmax "real" probability of the liveness nets for the face at box."""
        h, w = rgb.shape[:2]
        scores = []
        for scale, sess in self.liveness:
            x = bgr_planes(rgb, crop_window(box, scale, w, h), *self.live_size)
            logits = self.run(sess, "liveness", x)[0][0].astype(np.float64)
            e = np.exp(logits - logits.max())
            scores.append(float(e[self.real_class] / e.sum()))
        return sum(scores) / len(scores)

    def embed(self, chip):
        x = ((np.asarray(chip).astype(F32) - self.mean) * self.inv_std).transpose(2, 0, 1)
        out = self.run(self.embedder, "embed", np.ascontiguousarray(x[None]))[0][0]
        return out / np.linalg.norm(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--embedder", required=True, help="manifest id, e.g. mobilefacenet-arcface")
    ap.add_argument("--threads", type=int, default=1, help="0 = onnxruntime default (all cores)")
    ap.add_argument("--gallery-people", type=int, default=10000)
    ap.add_argument("--min-face", type=float, default=20.0)
    ap.add_argument("--liveness", default="", help="comma-separated nets of minifasnet.toml")
    args = ap.parse_args()

    t = now()
    nets = [n for n in args.liveness.split(",") if n]
    pipe = Pipeline(args.models, args.embedder, args.threads, args.min_face, nets)
    load_ms = (now() - t) * 1e3
    dim = int(pipe.emb["output_dim"])
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((args.gallery_people * 5, dim)).astype(F32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    print(
        json.dumps(
            {
                "ready": True,
                "load_ms": load_ms,
                "onnxruntime": ort.__version__,
                "numpy": np.__version__,
                "threads": args.threads,
            }
        ),
        flush=True,
    )

    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        pipe.infer = {}
        times = {}
        t0 = now()
        image = Image.open(req["frame"]).convert("RGB")
        rgb = np.asarray(image)
        times["decode"] = now() - t0
        t = now()
        boxes = pipe.stage_pnet(image)
        times["pnet"] = now() - t
        faces = []
        times["rnet"] = times["onet"] = 0.0
        if len(boxes):
            t = now()
            boxes = pipe.stage_rnet(rgb, boxes)
            times["rnet"] = now() - t
            if len(boxes):
                t = now()
                faces = pipe.stage_onet(rgb, boxes)
                times["onet"] = now() - t
        times["align"] = times["liveness"] = times["embed"] = times["search"] = 0.0
        for face in faces:
            t = now()
            chip = pipe.align(image, face["landmarks"])
            times["align"] += now() - t
            if pipe.liveness:
                t = now()
                face["liveness"] = pipe.live(rgb, face["box"])
                times["liveness"] += now() - t
            t = now()
            e = pipe.embed(chip)
            times["embed"] += now() - t
            t = now()
            sims = (gallery @ e).reshape(-1, 5).max(axis=1)
            best = int(np.argmax(sims))
            times["search"] += now() - t
            face["embedding"] = e.tolist()
            face["best"] = [best, float(sims[best])]
        times["total"] = now() - t0
        reply = {
            "times": {k: v * 1e3 for k, v in times.items()},
            "infer": {k: v * 1e3 for k, v in pipe.infer.items()},
            "faces": faces,
        }
        print(json.dumps(reply), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_kb": peak}), flush=True)


if __name__ == "__main__":
    main()
