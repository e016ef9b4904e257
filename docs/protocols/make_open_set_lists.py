#!/usr/bin/env python3
"""Write the lists of the gallery-size-aware operating point (docs/accuracy.md, "Operating point")
from ../shared/data/dev (run from the repo root: `python3 docs/protocols/make_open_set_lists.py
../shared/data/dev`). Deterministic: people are split by the MD5 of their name, never at random.

Every LFW person of lfw_folds_1_2 and lfw_disjoint goes to one of two halves:
  calibration (MD5 even): calibration_impostors.tsv holds all their photos; `facegate calibrate
    --list` measures the impostor tail shipped in models/<id>.impostors.toml on it.
  evaluation (MD5 odd): never used to choose anything.
    open_set_gallery.tsv: the first photo of each evaluation person with two or more photos
      (they have mated probes), then the first photo of each calibration person (distractors:
      enrolled, never probed; their comparisons with evaluation strangers were never measured),
      interleaved in MD5 order, so that the first N lines are a gallery of N people of the same
      mix for every N (`eval identify --gallery-sizes`).
    open_set_probes.tsv: up to 5 further photos of each evaluation person with two or more
      photos, then every evaluation person with one photo, labelled UNKNOWN.
The three lfw_disjoint people LFW also lists under another name (ALIASES) are left out.

With `--templates K` (K >= 2) it writes instead the several-templates protocol (issue 15,
"Templates": max against mean-of-top-k against a centroid):
    open_set_gallery_kK.tsv: the first K photos of each evaluation person with more than K
      photos, interleaved in MD5 order with up to K photos of each calibration person
      (distractors).
    open_set_probes_kK.tsv: up to 5 further photos of each of those evaluation people, then the
      same strangers as above (evaluation people with one photo).
"""
import hashlib
import os
import sys

IMAGE = (".jpg", ".jpeg", ".png")
MAX_PROBES = 5
ALIASES = {"Yingfan_Wang", "Glenn_Rivers", "William_Pryor_Jr"}


def md5(name):
    return int(hashlib.md5(name.encode()).hexdigest(), 16)


def main(dev, templates=1):
    people = []
    for folder in ("lfw_folds_1_2", "lfw_disjoint"):
        root = os.path.join(dev, folder)
        for name in sorted(os.listdir(root)):
            d = os.path.join(root, name)
            if not os.path.isdir(d) or name in ALIASES:
                continue
            files = sorted(f"{folder}/{name}/{f}" for f in os.listdir(d) if f.lower().endswith(IMAGE))
            if files:
                people.append((name, files))
    people.sort(key=lambda p: (md5(p[0]) >> 1, p[0]))
    calibration = [p for p in people if md5(p[0]) % 2 == 0]
    evaluation = [p for p in people if md5(p[0]) % 2 == 1]
    here = os.path.dirname(os.path.abspath(__file__))

    def write(name, header, rows):
        with open(os.path.join(here, name), "w") as out:
            out.write(f"# {header}; written by make_open_set_lists.py\n")
            out.writelines(f"{label}\t{path}\n" for label, path in rows)

    strangers = [("UNKNOWN", f[0]) for n, f in evaluation if len(f) == 1]
    if templates >= 2:
        k = templates
        enrolled = [(n, f) for n, f in people if md5(n) % 2 == 0 or len(f) > k]
        gallery = [(n, x) for n, f in enrolled for x in f[:k]]
        mated = [(n, f) for n, f in evaluation if len(f) > k]
        probes = [(n, x) for n, f in mated for x in f[k:k + MAX_PROBES]]
        write(f"open_set_gallery_k{k}.tsv",
              f"{len(enrolled)} people, up to {k} photos each ({len(gallery)} photos): "
              f"{len(mated)} evaluation people, {len(enrolled) - len(mated)} calibration distractors",
              gallery)
        write(f"open_set_probes_k{k}.tsv",
              f"{len(probes)} mated probes, then {len(strangers)} strangers", probes + strangers)
        return
    gallery = [(n, f[0]) for n, f in people
               if (md5(n) % 2 == 0) or len(f) >= 2]
    probes = [(n, x) for n, f in evaluation if len(f) >= 2 for x in f[1:1 + MAX_PROBES]]
    cal_rows = [(n, x) for n, f in calibration for x in f]
    write("calibration_impostors.tsv", f"{len(calibration)} people, {len(cal_rows)} photos", cal_rows)
    mated = sum(1 for n, f in evaluation if len(f) >= 2)
    write("open_set_gallery.tsv",
          f"{len(gallery)} people, one photo each: {mated} evaluation people, {len(gallery) - mated} calibration distractors",
          gallery)
    write("open_set_probes.tsv", f"{len(probes)} mated probes, then {len(strangers)} strangers", probes + strangers)


if __name__ == "__main__":
    args = sys.argv[1:]
    k = 1
    if "--templates" in args:
        i = args.index("--templates")
        k = int(args[i + 1])
        del args[i:i + 2]
    main(args[0] if args else "../shared/data/dev", k)
