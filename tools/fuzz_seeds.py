"""Writes the small seed corpora of the fuzz targets to fuzz/seeds/<target>/seed-*.

Run: python3 tools/fuzz_seeds.py   (needs numpy, safetensors, Pillow)
Each seed is a valid input of its target (a few KB at most), so the fuzzer starts from
files that reach deep into each loader rather than from the first magic-byte check.
"""
import io
import json
import os

import numpy as np
from PIL import Image
from safetensors.numpy import save

ROOT = os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds")
rng = np.random.default_rng(7)


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def w(*shape, dtype=np.float32):
    return (rng.standard_normal(shape) * 0.1).astype(dtype)


def models():
    # A described network: every layer type the metadata knows.
    layers = [
        {"type": "conv2d", "name": "c1", "kernel": 3, "padding": 1},
        {"type": "batchnorm2d", "name": "bn1"},
        {"type": "relu", "name": "r1"},
        {"type": "maxpool2d", "name": "p1", "kernel": 2},
        {"type": "conv2d", "name": "c2", "kernel": [3, 1], "stride": [1, 2], "padding": [1, 0]},
        {"type": "relu", "name": "r2"},
        {"type": "avgpool2d", "name": "p2", "kernel": 2, "ceil_mode": True},
        {"type": "adaptive_avgpool2d", "name": "gap", "output": [2, 2]},
        {"type": "flatten", "name": "f"},
        {"type": "dropout", "name": "d"},
        {"type": "linear", "name": "fc"},
    ]
    t = {
        "c1.weight": w(4, 3, 3, 3), "c1.bias": w(4),
        "bn1.weight": w(4) + 1, "bn1.bias": w(4),
        "bn1.running_mean": w(4), "bn1.running_var": np.abs(w(4)) + 1,
        "c2.weight": w(5, 4, 3, 1), "c2.bias": w(5),
        "fc.weight": w(3, 20), "fc.bias": w(3),
    }
    meta = {"format": 1, "arch": "fuzz", "layers": layers, "input_size": [12, 10],
            "resize": 13, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
            "classes": ["a", "b", "c"]}
    put("model_load", "described", save(t, metadata={"netlens": json.dumps(meta)}))
    half = {k: v.astype(np.float16) for k, v in t.items()}
    put("model_load", "described-f16", save(half, metadata={"netlens": json.dumps(meta)}))
    # torchvision VGG naming, no metadata: conv, relu, pool, conv+bn, relu, pool, classifier
    vgg = {
        "features.0.weight": w(2, 3, 3, 3), "features.0.bias": w(2),
        "features.3.weight": w(2, 2, 3, 3), "features.3.bias": w(2),
        "features.4.weight": w(2) + 1, "features.4.bias": w(2),
        "features.4.running_mean": w(2), "features.4.running_var": np.abs(w(2)) + 1,
        "classifier.0.weight": w(4, 2 * 7 * 7), "classifier.0.bias": w(4),
        "classifier.3.weight": w(4, 4), "classifier.3.bias": w(4),
        "classifier.6.weight": w(2, 4), "classifier.6.bias": w(2),
    }
    put("model_load", "torchvision", save(vgg))
    small = {"netlens": json.dumps({"input_size": 8, "layers": layers[:3] + [
        {"type": "flatten", "name": "f"}, {"type": "linear", "name": "fc"}]})}
    st = {k: t[k] for k in ["c1.weight", "c1.bias", "bn1.weight", "bn1.bias",
                            "bn1.running_mean", "bn1.running_var"]}
    st["fc.weight"], st["fc.bias"] = w(2, 4 * 8 * 8), w(2)
    put("model_load", "linear-head", save(st, metadata=small))
    residual()


def residual():
    # Skip connections: named inputs, an identity and a projection sum, a BN in a block.
    # Its own generator, so the seeds drawn after it stay as they were.
    r = np.random.default_rng(8)

    def rw(*shape):
        return (r.standard_normal(shape) * 0.1).astype(np.float32)

    layers = [
        {"type": "conv2d", "name": "c1", "kernel": 3, "padding": 1},
        {"type": "relu", "name": "r1"},
        {"type": "conv2d", "name": "c2", "kernel": 3, "padding": 1},
        {"type": "batchnorm2d", "name": "bn2"},
        {"type": "add", "name": "s1", "inputs": ["bn2", "r1"]},
        {"type": "relu", "name": "r2"},
        {"type": "conv2d", "name": "c3", "kernel": 3, "stride": 2, "padding": 1},
        {"type": "conv2d", "name": "proj", "kernel": 1, "stride": 2, "inputs": ["r2"]},
        {"type": "add", "name": "s2", "inputs": ["c3", "proj", "proj"]},
        {"type": "adaptive_avgpool2d", "name": "gap", "output": 1},
        {"type": "flatten", "name": "f"},
        {"type": "linear", "name": "fc"},
    ]
    t = {
        "c1.weight": rw(4, 3, 3, 3), "c1.bias": rw(4),
        "c2.weight": rw(4, 4, 3, 3), "c2.bias": rw(4),
        "bn2.weight": rw(4) + 1, "bn2.bias": rw(4),
        "bn2.running_mean": rw(4), "bn2.running_var": np.abs(rw(4)) + 1,
        "c3.weight": rw(6, 4, 3, 3), "c3.bias": rw(6),
        "proj.weight": rw(6, 4, 1, 1), "proj.bias": rw(6),
        "fc.weight": rw(2, 6), "fc.bias": rw(2),
    }
    meta = {"format": 1, "layers": layers, "input_size": [9, 8]}
    put("model_load", "residual", save(t, metadata={"netlens": json.dumps(meta)}))


def npy_bytes(a, version=(1, 0)):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def npys():
    put("npy_parse", "f4", npy_bytes(w(2, 3, 4)))
    put("npy_parse", "f8-big-endian", npy_bytes(w(3, 5).astype(">f8")))
    put("npy_parse", "v2-scalar", npy_bytes(np.float32(1.5).reshape(()), version=(2, 0)))
    put("npy_parse", "v3-empty", npy_bytes(np.zeros((0, 7), np.float32), version=(3, 0)))


def images():
    rgb = (rng.random((20, 27, 3)) * 255).astype(np.uint8)
    for fmt, mode, name in [("PNG", "RGB", "rgb.png"), ("PNG", "L", "grey.png"),
                            ("PNG", "RGBA", "rgba.png"), ("PNG", "1", "bilevel.png"),
                            ("PNG", "P", "palette.png"), ("JPEG", "RGB", "rgb.jpg"),
                            ("JPEG", "L", "grey.jpg")]:
        buf = io.BytesIO()
        img = Image.fromarray(rgb).convert(mode)
        if name == "rgb.jpg":
            img.save(buf, fmt, quality=60, progressive=True)
        else:
            img.save(buf, fmt)
        put("image_decode", name, buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(rgb[:1]).save(buf, "PNG", bits=16)
    put("image_decode", "thin.png", buf.getvalue())


def csvs():
    label = ("number,name,category,frequency,coverage,syns\n"
             "0,-,,0,0,\n1,red,color(2),2,1.0,\n2,\"big, round\",object(1);part(1),1,0.5,\n")
    index = ("image,split,ih,iw,sh,sw,color,object,part,material,scene,texture\n"
             "a.png,train,64,64,64,64,a_color.png,a_object.png,,,3,\n"
             "\"b,c.png\",val,32,48,16,24,,b_object.png;b2_object.png,b_part.png,,,7;9\n")
    put("broden_csv", "broden", (label + "\0" + index).encode())
    put("broden_csv", "quoted-fields", b'x\t"y"\t, z\t\n')


if __name__ == "__main__":
    models()
    npys()
    images()
    csvs()
