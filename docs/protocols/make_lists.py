#!/usr/bin/env python3
"""Write the open-set 1:N lists of docs/accuracy.md from ../shared/data/dev (run from the repo root:
`python3 docs/protocols/make_lists.py ../shared/data/dev`). Deterministic: sorted names and files.

gallery_1n.tsv: the first photo of every person of lfw_folds_1_2 and face_recognition_examples
  and of every lfw_disjoint person with two or more photos (901 people, one template each).
probes_1n.tsv: up to 5 further photos of each of those people (mated searches; capped so George
  W. Bush's 143 spare photos do not outweigh everyone else), then every lfw_disjoint person with
  a single photo, labelled UNKNOWN (strangers: never enrolled), except three LFW people who are
  in the gallery under another name (ALIASES): counted as strangers, they would be "false"
  accepts of the right person.
"""
import os
import sys

IMAGE = (".jpg", ".jpeg", ".png", ".gif", ".pgm")
MAX_PROBES = 5
# lfw_disjoint name -> the same person's name in lfw_folds_1_2 (LFW labels some people twice).
ALIASES = {
    "Yingfan_Wang": "Wang_Yingfan",
    "Glenn_Rivers": "Doc_Rivers",
    "William_Pryor_Jr": "Bill_Pryor",
}


def photos(d):
    return sorted(f for f in os.listdir(d) if f.lower().endswith(IMAGE))


def main(dev):
    gallery, probes, strangers = [], [], []
    for folder in ("lfw_folds_1_2", "face_recognition_examples", "lfw_disjoint"):
        root = os.path.join(dev, folder)
        for name in sorted(os.listdir(root)):
            d = os.path.join(root, name)
            if not os.path.isdir(d) or name.startswith("_"):
                continue
            files = [f"{folder}/{name}/{f}" for f in photos(d)]
            if folder == "lfw_disjoint" and len(files) == 1:
                if name in ALIASES:
                    continue
                strangers.append(("UNKNOWN", files[0]))
                continue
            gallery.append((name, files[0]))
            probes += [(name, f) for f in files[1 : 1 + MAX_PROBES]]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "gallery_1n.tsv"), "w") as out:
        out.write(f"# {len(gallery)} people, one photo each; written by make_lists.py\n")
        out.writelines(f"{label}\t{path}\n" for label, path in gallery)
    with open(os.path.join(here, "probes_1n.tsv"), "w") as out:
        out.write(f"# {len(probes)} mated probes, then {len(strangers)} strangers; written by make_lists.py\n")
        out.writelines(f"{label}\t{path}\n" for label, path in probes + strangers)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/dev")
