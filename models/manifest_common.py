"""Helpers shared by the model converters."""

import re
from pathlib import Path

# Top-level manifest keys that hold measurements, not conversion output: `threshold` from
# `facegate calibrate`, `lfw_accuracy` from `facegate eval pairs`. A regenerated manifest keeps them.
MEASURED_KEYS = ("threshold", "lfw_accuracy")


def _measured_block(lines, key):
    """The top-level `key = ...` line of `lines` with the `# key:` comment lines directly above
    it, or None."""
    for i, ln in enumerate(lines):
        if ln.startswith("["):
            return None
        if re.match(rf"{key}\s*=", ln):
            value = ln.split("=", 1)[1].split("#", 1)[0].strip()
            try:
                float(value)
            except ValueError:
                raise SystemExit(f"{key} {value!r} is not a number")
            j = i
            while j > 0 and lines[j - 1].startswith(f"# {key}:"):
                j -= 1
            return j, i + 1
    return None


def keep_measured(path, text):
    """Carry the measured top-level lines (`threshold = ...`, `lfw_accuracy = ...`, verbatim, with
    their `# threshold:` / `# lfw_accuracy:` comment lines) of the manifest already at `path` into
    the new manifest `text`. A generated `threshold = 0.0` stays only when there is none; a kept
    `lfw_accuracy` goes right after the threshold when `text` has none."""
    path = Path(path)
    if not path.exists():
        return text
    old = path.read_text().split("\n")
    new = text.split("\n")
    for key in MEASURED_KEYS:
        block = _measured_block(old, key)
        if block is None:
            continue
        keep = old[block[0]:block[1]]
        here = _measured_block(new, key)
        if here is None:
            after = _measured_block(new, "threshold")
            at = after[1] if after else next(k for k, ln in enumerate(new) if ln.startswith("["))
            new = new[:at] + keep + new[at:]
        else:
            new = new[:here[0]] + keep + new[here[1]:]
    return "\n".join(new)


def keep_threshold(path, text):
    """The converters' name for `keep_measured`."""
    return keep_measured(path, text)
