#!/usr/bin/env python3
"""Writes assets/imagenet_classes.txt: the 1000 ImageNet-1k class descriptions, one per line.

Line i+1 describes output i of an ImageNet-1k classifier (timm's class order, sorted WordNet synsets):
line 1 is "tench, Tinca tinca", line 282 is "tabby, tabby cat". The text is timm's own lemma list
(timm/data/_info/imagenet_synset_to_lemma.txt), read through timm.data.ImageNetInfo.

Run:  /path/to/venv/bin/python assets/make_imagenet_classes.py
Needs: timm==1.0.31
"""
from pathlib import Path

from timm.data import ImageNetInfo


def main():
    info = ImageNetInfo()
    assert info.num_classes() == 1000
    names = [info.index_to_description(i) for i in range(1000)]
    assert names[0] == "tench, Tinca tinca"
    assert names[281] == "tabby, tabby cat"
    assert all(n and "\n" not in n and n == n.strip() for n in names)
    out = Path(__file__).resolve().parent / "imagenet_classes.txt"
    out.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    print(f"wrote {out} ({len(names)} classes)")


if __name__ == "__main__":
    main()
