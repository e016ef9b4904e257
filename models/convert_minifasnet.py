#!/usr/bin/env python3
"""Convert the two Silent-Face MiniFASNet passive-liveness state_dicts to ONNX (opset 13).

Run from the repository root:  models/.venv/bin/python models/convert_minifasnet.py [--out DIR]
(--out: where the .onnx files, the manifest and parity/ are written; default models/.)

Source: ../shared/pad/models/ (byte copies of minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04a,
resources/anti_spoof_models/, Apache-2.0), checked by sha256 before use.

Steps:
  1. Check the sha256 of both .pth files and load them with torch.load(weights_only=True).
  2. Build `MiniFASNet` below, a PyTorch module written for this project from the published
     architecture (MobileFaceNet-style depthwise-separable blocks; squeeze-excitation in the last
     block of each residual stage for V1SE) and the state_dicts' parameter names and shapes, and
     load each state_dict into it with strict=True (every name and shape must match).
  3. torch.onnx.export (TorchScript exporter, eval mode: batch norm folded into the convolutions)
     with a symbolic batch "N".
  4. Compare onnxruntime with (a) the torch module and (b) an independent float64 numpy forward
     pass computed straight from the state_dict (no torch), on 80x80 crops of real NUAA frames
     around faces found by models/reference_mtcnn.py. The numpy outputs are written as parity
     fixtures for tests/parity.rs.
  5. Write models/minifasnet.toml.

ONNX interface: input "input" [N,3,80,80] float32, BGR, raw 0..255 values (no normalisation),
NCHW; output "logits" [N,3] (softmax index 1 = real face; the Rust side applies the softmax).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from manifest_common import keep_measured  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
PAD = os.path.normpath(os.path.join(ROOT, "..", "shared", "pad"))
OPSET = 13

# name -> (file in ../shared/pad/models, sha256, crop scale, whether the residual stages end
# in a squeeze-excitation block)
NETS = {
    "minifasnet_v2": ("2.7_80x80_MiniFASNetV2.pth",
                      "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
                      2.7, False),
    "minifasnet_v1se": ("4_0_0_80x80_MiniFASNetV1SE.pth",
                        "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
                        4.0, True),
}
UPSTREAM = "minivision-ai/Silent-Face-Anti-Spoofing @ b6d5f04a, resources/anti_spoof_models/"
LICENCE = ("Apache-2.0 (Silent-Face-Anti-Spoofing, minivision-ai; licence text in "
           "../shared/pad/models/LICENSE)")
BN_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# The module. Names follow the state_dicts: a "unit" is conv -> bn (-> prelu); a depthwise-
# separable block is a 1x1 expansion unit `conv`, a 3x3 depthwise unit `conv_dw` and a linear
# 1x1 projection `project`; `conv_3`, `conv_4`, `conv_5` are residual stages of such blocks with
# the stage width in and out, the expansion width per block read from the state_dict.
# ---------------------------------------------------------------------------------------------

class Unit(nn.Module):
    def __init__(self, cin, cout, k, stride, pad, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.prelu = nn.PReLU(cout) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    def __init__(self, c, mid):
        super().__init__()
        self.fc1 = nn.Conv2d(c, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.fc2 = nn.Conv2d(mid, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, eps=BN_EPS)

    def forward(self, x):
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.relu(self.bn1(self.fc1(w)))
        w = torch.sigmoid(self.bn2(self.fc2(w)))
        return x * w


class Separable(nn.Module):
    def __init__(self, cin, cout, mid, stride, residual, se_mid=None):
        super().__init__()
        self.conv = Unit(cin, mid, 1, 1, 0)
        self.conv_dw = Unit(mid, mid, 3, stride, 1, groups=mid)
        self.project = Unit(mid, cout, 1, 1, 0, act=False)
        self.se_module = SqueezeExcite(cout, se_mid) if se_mid else None
        self.residual = residual

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x):
        return self.model(x)


def _w(sd, name):
    return tuple(sd[name].shape)


class MiniFASNet(nn.Module):
    """MiniFASNet V2 / V1SE for 80x80 input; widths are read from the state_dict `sd`."""

    def __init__(self, sd, se):
        super().__init__()
        mid = lambda p: _w(sd, p + ".conv.conv.weight")[0]  # noqa: E731
        c1 = _w(sd, "conv1.conv.weight")[0]
        self.conv1 = Unit(3, c1, 3, 2, 1)
        self.conv2_dw = Unit(c1, c1, 3, 1, 1, groups=c1)
        widths = {"conv_23": 64, "conv_34": 128, "conv_45": 128}
        cin = c1
        for down, stage, n in (("conv_23", "conv_3", 4), ("conv_34", "conv_4", 6),
                               ("conv_45", "conv_5", 2)):
            cout = widths[down]
            setattr(self, down, Separable(cin, cout, mid(down), 2, False))
            blocks = []
            for i in range(n):
                p = f"{stage}.model.{i}"
                se_mid = _w(sd, p + ".se_module.fc1.weight")[0] if se and i == n - 1 else None
                blocks.append(Separable(cout, cout, mid(p), 1, True, se_mid))
            setattr(self, stage, Stage(blocks))
            cin = cout
        c6 = _w(sd, "conv_6_sep.conv.weight")[0]
        self.conv_6_sep = Unit(cin, c6, 1, 1, 0)
        # The kernel covers the whole 5x5 map left of an 80x80 input (stride 16).
        self.conv_6_dw = Unit(c6, c6, 5, 1, 0, groups=c6, act=False)
        emb = _w(sd, "linear.weight")[0]
        self.linear = nn.Linear(c6, emb, bias=False)
        self.bn = nn.BatchNorm1d(emb, eps=BN_EPS)
        self.prob = nn.Linear(emb, _w(sd, "prob.weight")[0], bias=False)

    def forward(self, x):
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        x = self.conv_4(self.conv_34(x))
        x = self.conv_5(self.conv_45(x))
        x = self.conv_6_dw(self.conv_6_sep(x))
        x = torch.flatten(x, 1)
        return self.prob(self.bn(self.linear(x)))  # dropout (training only) is omitted


# ---------------------------------------------------------------------------------------------
# Independent float64 numpy forward pass from the raw state_dict (no torch in the arithmetic).
# ---------------------------------------------------------------------------------------------

def np_conv(x, w, stride, pad, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out


def np_depthwise(x, w, stride, pad):
    n, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] * \
                w[None, :, 0, i, j, None, None]
    return out


def np_bn(x, sd, p):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    g, b = sd[p + ".weight"].reshape(shape), sd[p + ".bias"].reshape(shape)
    m, v = sd[p + ".running_mean"].reshape(shape), sd[p + ".running_var"].reshape(shape)
    return (x - m) / np.sqrt(v + BN_EPS) * g + b


def np_unit(x, sd, p, stride, pad, depthwise=False):
    w = sd[p + ".conv.weight"]
    x = np_depthwise(x, w, stride, pad) if depthwise else np_conv(x, w, stride, pad, 1)
    x = np_bn(x, sd, p + ".bn")
    if p + ".prelu.weight" in sd:
        a = sd[p + ".prelu.weight"].reshape(1, -1, 1, 1)
        x = np.where(x > 0, x, a * x)
    return x


def np_block(x, sd, p, stride, residual):
    y = np_unit(x, sd, p + ".conv", 1, 0)
    y = np_unit(y, sd, p + ".conv_dw", stride, 1, depthwise=True)
    y = np_unit(y, sd, p + ".project", 1, 0)
    if p + ".se_module.fc1.weight" in sd:
        s = y.mean(axis=(2, 3), keepdims=True)
        s = np_bn(np_conv(s, sd[p + ".se_module.fc1.weight"], 1, 0, 1), sd, p + ".se_module.bn1")
        s = np.maximum(s, 0)
        s = np_bn(np_conv(s, sd[p + ".se_module.fc2.weight"], 1, 0, 1), sd, p + ".se_module.bn2")
        y = y * (1 / (1 + np.exp(-s)))
    return x + y if residual else y


def np_forward(sd, x):
    x = np_unit(x, sd, "conv1", 2, 1)
    x = np_unit(x, sd, "conv2_dw", 1, 1, depthwise=True)
    for down, stage in (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")):
        x = np_block(x, sd, down, 2, False)
        i = 0
        while f"{stage}.model.{i}.conv.conv.weight" in sd:
            x = np_block(x, sd, f"{stage}.model.{i}", 1, True)
            i += 1
    x = np_unit(x, sd, "conv_6_sep", 1, 0)
    x = np_unit(x, sd, "conv_6_dw", 1, 0, depthwise=True)
    x = x.reshape(x.shape[0], -1) @ sd["linear.weight"].T
    x = np_bn(x, sd, "bn")
    return x @ sd["prob.weight"].T


# ---------------------------------------------------------------------------------------------
# Crops as the models were trained (also what src/vision/liveness.rs does).
# ---------------------------------------------------------------------------------------------

def crop_box(box, scale, w, h):
    """The square-ish window of `scale` x the face box (x1, y1, x2, y2), centred on the box,
    the scale reduced so the window fits the image, then shifted inside the image edge. Integer
    (left, top, right, bottom), right/bottom inclusive."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = box[0] + bw / 2, box[1] + bh / 2
    l, t, r, b = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if l < 0:
        r -= l
        l = 0
    if t < 0:
        b -= t
        t = 0
    if r > w - 1:
        l -= r - (w - 1)
        r = w - 1
    if b > h - 1:
        t -= b - (h - 1)
        b = h - 1
    return int(l), int(t), int(r), int(b)


def resize_bilinear(img, out_w, out_h):
    """Bilinear with half-pixel centres and edge clamping (OpenCV INTER_LINEAR's mapping), float."""
    h, w = img.shape[:2]
    def axis(n_in, n_out):
        s = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        s = np.clip(s, 0, None)
        i0 = np.minimum(np.floor(s).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0
    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    img = img.astype(np.float64)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return np.round(top * (1 - fy)[:, None, None] + bot * fy[:, None, None])


def model_input(rgb, box, scale):
    """One [3, 80, 80] float32 BGR 0..255 tensor."""
    h, w = rgb.shape[:2]
    l, t, r, b = crop_box(box, scale, w, h)
    chip = resize_bilinear(rgb[t:b + 1, l:r + 1], 80, 80)
    return np.ascontiguousarray(chip[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)


# ---------------------------------------------------------------------------------------------

def sha256_file(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_state_dict(name):
    file, sha, _, _ = NETS[name]
    path = os.path.join(PAD, "models", file)
    got = sha256_file(path)
    if got != sha:
        raise SystemExit(f"{path}: sha256 {got}, expected {sha}")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # Saved from a DataParallel wrapper: every name starts with "module.".
    return {k.removeprefix("module."): v for k, v in sd.items()}


def parity_images():
    """A few live and attack frames of different subjects, with the central face's box from the
    reference MTCNN (models/reference_mtcnn.py)."""
    picks = []
    for kind in ("live", "attack"):
        files = sorted(os.listdir(os.path.join(PAD, "nuaa_dev", kind)))
        picks += [os.path.join(PAD, "nuaa_dev", kind, files[i]) for i in (0, len(files) // 2)]
    out = subprocess.run([sys.executable, os.path.join(MODELS, "reference_mtcnn.py"), "--json",
                          "--models", MODELS, *picks],
                         check=True, capture_output=True, text=True).stdout
    cases = []
    for line in out.splitlines():
        r = json.loads(line)
        if not r["faces"]:
            raise SystemExit(f"no face found in {r['image']}")
        cases.append((os.path.relpath(r["image"], PAD), r["faces"][0]["box"]))
    return cases


def write_f32(path, arr):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(arr, dtype="<f4").tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=MODELS)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    parity = os.path.join(out, "parity")
    os.makedirs(parity, exist_ok=True)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    cases = parity_images()
    manifest = [
        "# MiniFASNet passive liveness (Silent-Face-Anti-Spoofing), converted by "
        "models/convert_minifasnet.py",
        'id = "minifasnet-silentface"',
        'kind = "liveness"',
        'channel_order = "bgr"                 # input = raw 0..255 BGR, NCHW, no normalisation',
        "input_size = [80, 80]",
        "real_class = 1                        # softmax index of a real face (0, 2: attacks)",
        "",
    ]
    for name, (file, sha, scale, se) in NETS.items():
        sd = load_state_dict(name)
        net = MiniFASNet(sd, se).eval()
        net.load_state_dict(sd, strict=True)
        n_params = sum(p.numel() for p in net.parameters())
        onnx_path = os.path.join(out, f"{name}.onnx")
        dummy = torch.zeros(1, 3, 80, 80)
        torch.onnx.export(net, (dummy,), onnx_path, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                          do_constant_folding=True)
        model = onnx.load(onnx_path)
        model.producer_name, model.producer_version = "facegate models/convert_minifasnet.py", ""
        model.doc_string = ""
        onnx.checker.check_model(model)
        onnx.save(model, onnx_path)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        sd64 = {k: v.double().numpy() for k, v in sd.items() if v.dtype.is_floating_point}

        fixture = {"model": f"{name}.onnx",
                   "reference": "independent float64 numpy forward pass from the state_dict "
                                f"{file} (models/convert_minifasnet.py np_forward); outputs cast "
                                "to float32",
                   "outputs": ["logits"], "cases": []}
        worst_np = worst_torch = 0.0
        batches = [[0], [1, 2, 3]]
        for k, idx in enumerate(batches):
            x = np.stack([model_input(np.asarray(Image.open(os.path.join(PAD, cases[i][0]))
                                                 .convert("RGB")), cases[i][1], scale)
                          for i in idx])
            got = sess.run(None, {"input": x})[0]
            ref = np_forward(sd64, x.astype(np.float64)).astype(np.float32)
            with torch.no_grad():
                tor = net(torch.from_numpy(x)).numpy()
            d_np = float(np.abs(got - ref).max())
            d_torch = float(np.abs(got - tor).max())
            worst_np, worst_torch = max(worst_np, d_np), max(worst_torch, d_torch)
            write_f32(os.path.join(parity, f"{name}_{k}.in.f32"), x)
            write_f32(os.path.join(parity, f"{name}_{k}.out0.f32"), ref)
            src = "; ".join(f"{cases[i][0]} face box of models/reference_mtcnn.py "
                            f"({', '.join(f'{v:.1f}' for v in cases[i][1])})" for i in idx)
            fixture["cases"].append({
                "source": f"{src}; {scale}x crop, bilinear to 80x80, BGR 0..255, NCHW",
                "input": f"{name}_{k}.in.f32", "input_shape": list(x.shape),
                "outputs": [{"file": f"{name}_{k}.out0.f32", "name": "logits",
                             "shape": list(ref.shape)}],
                "max_abs_diff": d_np})
            p_real = np.exp(ref - ref.max(1, keepdims=True))
            p_real = (p_real / p_real.sum(1, keepdims=True))[:, 1]
            print(f"{name} batch {k}: max|ort - numpy f64| {d_np:.3e}, max|ort - torch| "
                  f"{d_torch:.3e}, p(real) {np.round(p_real, 4).tolist()}")
        with open(os.path.join(parity, f"{name}.json"), "w") as f:
            json.dump(fixture, f, indent=2)
            f.write("\n")
        manifest += [
            f"[{name.removeprefix('minifasnet_')}]",
            f'file = "{name}.onnx"',
            f'sha256 = "{sha256_file(onnx_path)}"',
            f"scale = {scale}                         # crop = {scale} x the face box",
            "",
            f"[{name.removeprefix('minifasnet_')}.source]",
            f'package = "{UPSTREAM}{file} (byte copy in ../shared/pad/models)"',
            f'path = "{file}"',
            f'sha256 = "{sha}"',
            f'licence = "{LICENCE}"',
            f"parameters = {n_params}",
            "",
            f"[{name.removeprefix('minifasnet_')}.parity]",
            'reference = "independent float64 numpy forward pass from the state_dict; compared '
            f'with onnxruntime {ort.__version__}"',
            f"max_abs_diff = {worst_np:.3e}",
            f"max_abs_diff_torch = {worst_torch:.3e}   # onnxruntime vs the torch module "
            f"(torch {torch.__version__.split('+')[0]})",
            "",
        ]
    path = os.path.join(out, "minifasnet.toml")
    text = keep_measured(path, "\n".join(manifest).rstrip("\n") + "\n")
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
