"""Compares `evatag tag --embedding` output of the Windows build with the Linux build's and
with timm's outputs for the fixture model (tests/fixtures/expected/<model>.safetensors).

    parity.py WINDOWS.jsonl LINUX.jsonl EXPECTED.safetensors WINDOWS_DIR...

Every line of both outputs must be valid JSON. For each photo, by file name: the Windows line's
path is WINDOWS_DIR\\<name> for one of the WINDOWS_DIRs, exactly as Windows spells it; both
builds give the same classes in the same order, probabilities within 1e-5 of each other, and
embeddings with cosine at least 0.99999 between them and to timm's; the classes are timm's top
five. Prints the figures; exits 1 on any difference.
"""

import json
import math
import struct
import sys


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = data[8 + size :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        out[name] = struct.unpack(f"<{(end - start) // 4}f", body[start:end])
    return out


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def top(values, k):
    return sorted(range(len(values)), key=lambda i: -values[i])[:k]


def main():
    windows_file, linux_file, expected_file, *windows_dirs = sys.argv[1:]
    windows = read_lines(windows_file)
    linux = {line["path"].rsplit("/", 1)[-1]: line for line in read_lines(linux_file)}
    expected = read_safetensors(expected_file)
    failures = []
    worst_linux, worst_timm, worst_prob, equal = 1.0, 1.0, 0.0, 0
    seen = set()
    for line in windows:
        path = line["path"]
        folder, _, name = path.rpartition("\\")
        seen.add(name)
        if folder not in windows_dirs:
            failures.append(f"{path}: not in {' or '.join(windows_dirs)} as Windows spells it")
        if "labels" not in line:
            failures.append(f"{path}: not tagged: {line.get('error')}")
            continue
        other = linux.get(name)
        if other is None or "labels" not in other:
            failures.append(f"{name}: the Linux build did not tag it")
            continue
        classes = [label["class"] for label in line["labels"]]
        if classes != [label["class"] for label in other["labels"]]:
            failures.append(f"{name}: classes {classes} on Windows, {[l['class'] for l in other['labels']]} on Linux")
        else:
            equal += 1
        if classes != top(expected[f"{name}/logits"], len(classes)):
            failures.append(f"{name}: classes {classes} are not timm's top {len(classes)}")
        diff = max(abs(a["prob"] - b["prob"]) for a, b in zip(line["labels"], other["labels"]))
        worst_prob = max(worst_prob, diff)
        to_linux = cosine(line["embedding"], other["embedding"])
        to_timm = cosine(line["embedding"], expected[f"{name}/embedding"])
        worst_linux, worst_timm = min(worst_linux, to_linux), min(worst_timm, to_timm)
        if diff > 1e-5 or to_linux < 0.99999 or to_timm < 0.99999:
            failures.append(f"{name}: prob difference {diff:.2e}, cosine {to_linux:.7f} to Linux, {to_timm:.7f} to timm")
    missing = sorted(set(linux) - seen)
    if missing:
        failures.append(f"no Windows line for {', '.join(missing)}")
    print(
        f"parity: {equal}/{len(linux)} photos with the same labels on Windows and Linux; "
        f"largest probability difference {worst_prob:.2e}; lowest embedding cosine "
        f"{worst_linux:.7f} to Linux, {worst_timm:.7f} to timm"
    )
    for failure in failures:
        print(f"parity: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
