"""Writes tests/fixtures/broden-mini: a hand-made dataset in Broden's real layout for the
dissection tests. 12 images of 32x32, masks at 16x16 (half resolution, as Broden's 112
for 224), one coloured checkered square and one flat disc per image on grey; the object
cell holds two mask files separated by ';' and the scene is an image-level label number.
Label = red + 256 * green in the mask PNGs.

    python3 tools/make_broden_fixture.py
"""
import os

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "broden-mini")
COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
LABELS = [  # number, name, category
    (1, "red", "color"), (2, "green", "color"), (3, "blue", "color"),
    (4, "square", "object"), (5, "disc", "object"),
    (6, "indoor", "scene"), (7, "outdoor", "scene"),
]
N, S, M = 12, 32, 16


def mask_png(labels):
    rgb = np.zeros(labels.shape + (3,), np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    return Image.fromarray(rgb)


def main():
    rng = np.random.default_rng(5)
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    rows = []
    names = list(COLORS)
    yy, xx = np.mgrid[0:S, 0:S]
    for i in range(N):
        img = np.full((S, S, 3), 128, np.int32)
        color = np.zeros((S, S), np.int64)
        square = np.zeros((S, S), np.int64)
        disc = np.zeros((S, S), np.int64)
        # the square on one half, the disc on the other
        left = i % 2 == 0
        sx = int(rng.integers(1, 5)) + (0 if left else 16)
        sy = int(rng.integers(2, 14))
        side = int(rng.integers(9, 13))
        cs = int(rng.integers(0, 3))
        cd = int(rng.integers(0, 3))
        dx = (20 if left else 4) + int(rng.integers(0, 6))
        dy = int(rng.integers(8, 22))
        r = int(rng.integers(4, 6))
        d = (yy - dy) ** 2 + (xx - dx) ** 2 <= r * r
        img[d] = COLORS[names[cd]]
        disc[d] = 5
        color[d] = 1 + cd
        sq = (yy >= sy) & (yy < sy + side) & (xx >= sx) & (xx < sx + side)
        checker = np.where((yy + xx) % 2 == 0, 60, -60)
        base = np.array(COLORS[names[cs]])
        img[sq] = base + checker[sq][:, None]
        square[sq] = 4
        color[sq] = 1 + cs
        img = np.clip(img, 0, 255).astype(np.uint8)
        # masks at half resolution: each 2x2 block's bottom-right pixel
        sub = lambda a: a[1::2, 1::2]
        stem = f"mini/{i:03d}"
        os.makedirs(os.path.join(OUT, "images", "mini"), exist_ok=True)
        Image.fromarray(img).save(os.path.join(OUT, "images", stem + ".png"))
        mask_png(sub(color)).save(os.path.join(OUT, "images", stem + "_color.png"))
        mask_png(sub(square)).save(os.path.join(OUT, "images", stem + "_square.png"))
        mask_png(sub(disc)).save(os.path.join(OUT, "images", stem + "_disc.png"))
        scene = 6 if i % 3 else 7
        rows.append(
            f"{stem}.png,train,{S},{S},{M},{M},{stem}_color.png,"
            f"{stem}_square.png;{stem}_disc.png,,,{scene},"
        )
    with open(os.path.join(OUT, "index.csv"), "w") as f:
        f.write("image,split,ih,iw,sh,sw,color,object,part,material,scene,texture\n")
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(OUT, "label.csv"), "w") as f:
        f.write("number,name,category,frequency,coverage,syns\n")
        for n, name, cat in LABELS:
            f.write(f'{n},{name},{cat}({N}),{N},0.1,\n')
    cats = ["color", "object", "scene"]
    with open(os.path.join(OUT, "category.csv"), "w") as f:
        f.write("name,first,last,count,frequency\n")
        for c in cats:
            ns = [n for n, _, k in LABELS if k == c]
            f.write(f"{c},{ns[0]},{ns[-1]},{len(ns)},{N}\n")
    for c in cats:
        with open(os.path.join(OUT, f"c_{c}.csv"), "w") as f:
            f.write("code,number,name,frequency,coverage\n")
            for code, (n, name, _) in enumerate([l for l in LABELS if l[2] == c]):
                f.write(f"{code + 1},{n},{name},{N},0.1\n")


if __name__ == "__main__":
    main()
