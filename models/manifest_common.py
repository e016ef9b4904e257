"""Helpers shared by the model converters."""

import re
from pathlib import Path


def keep_threshold(path, text):
    """Carry the calibrated top-level `threshold = ...` line of the manifest already at `path`
    (verbatim, with the `# threshold:` comment lines directly above it) into the new manifest
    `text`; the generated `threshold = 0.0` stays only when there is none."""
    path = Path(path)
    if not path.exists():
        return text
    old = path.read_text().split("\n")
    keep = None
    for i, ln in enumerate(old):
        if ln.startswith("["):
            break
        if re.match(r"threshold\s*=", ln):
            value = ln.split("=", 1)[1].split("#", 1)[0].strip()
            try:
                float(value)
            except ValueError:
                raise SystemExit(f"{path}: threshold {value!r} is not a number")
            j = i
            while j > 0 and old[j - 1].startswith("# threshold:"):
                j -= 1
            keep = old[j:i + 1]
            break
    if keep is None:
        return text
    new = text.split("\n")
    i = next(k for k, ln in enumerate(new) if re.match(r"threshold\s*=", ln))
    return "\n".join(new[:i] + keep + new[i + 1:])
